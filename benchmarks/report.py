"""What the benchmarks record besides their figures: the machine they ran on (its measured
float32 matrix-multiply rate among it), and where their JSON goes."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from sn_platform.inference.bids_outputs import json_text


def cpu_gflops(size: int = 2048, repeats: int = 10) -> float:
    """Measured float32 matrix-multiply rate of this CPU (GFLOP/s) at torch's thread count."""
    a, b = torch.rand(size, size), torch.rand(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def machine() -> dict[str, Any]:
    """The processor, its cores, torch's version and threads, and ``cpu_gflops``."""
    return {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_matmul_gflop_per_s": round(cpu_gflops(), 1),
    }


def emit(figures: dict[str, Any], output: Path | None, key: str) -> None:
    """Print ``figures`` as JSON; with ``output``, also keep them as ``key`` of that JSON
    file (created, or merged into with the other keys it holds)."""
    print(json_text(figures), end="")
    if output is not None:
        kept = json.loads(output.read_text()) if output.exists() else {}
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json_text({**kept, key: figures}))
