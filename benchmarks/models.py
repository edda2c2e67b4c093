"""Forward+backward time and peak memory of each V-Net preset and MONAI's VNet; prints JSON.

    python benchmarks/models.py [--iterations 5] [--patch 64 64 3]

Each model runs in its own process so that peak memory (max RSS on CPU, peak allocated on
CUDA) belongs to that model alone. MONAI's VNet down-samples every axis four times, so it
runs on the nearest patch whose sizes are multiples of 16 (reported as its patch), and it
needs input channels dividing 16, so it gets 4 channels instead of 3.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import time
from typing import Any

import torch

PRESETS: dict[str, dict[str, Any]] = {
    "vnet_small": dict(depth=3, base_filters=8, kernel_size=3, convs_per_stage=[1, 2, 2]),
    "vnet_paper": dict(depth=4, base_filters=16, kernel_size=3, convs_per_stage=[1, 2, 3, 3]),
    "vnet_milletari": dict(
        depth=5, base_filters=16, kernel_size=5, convs_per_stage=[1, 2, 3, 3, 3], norm="none"
    ),
}


MONAI_CHANNELS = 4


def _build(name: str, patch: tuple[int, int, int]) -> torch.nn.Module:
    if name == "monai_vnet":
        from monai.networks.nets import VNet as MonaiVNet

        return MonaiVNet(spatial_dims=3, in_channels=MONAI_CHANNELS, out_channels=1)
    from sn_platform.models.vnet import VNet

    return VNet(in_channels=3, out_channels=1, patch_size=patch, **PRESETS[name])


def _measure(
    name: str,
    patch: tuple[int, int, int],
    batch: int,
    iterations: int,
    device: str,
    queue: mp.Queue,
) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    model = _build(name, patch).to(device)
    channels = MONAI_CHANNELS if name == "monai_vnet" else 3
    x = torch.randn(batch, channels, *patch, device=device)
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(x).mean().backward()

    step()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = (time.perf_counter() - start) / iterations
    peak_mb = (
        torch.cuda.max_memory_allocated() / 2**20
        if device == "cuda"
        else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_kb) / 1024
        + _model_mb(model)
    )
    queue.put(
        {
            "model": name,
            "device": device,
            "patch": list(patch),
            "in_channels": channels,
            "batch": batch,
            "parameters": sum(p.numel() for p in model.parameters()),
            "ms_per_iteration": round(elapsed * 1e3, 2),
            "peak_mb": round(peak_mb, 1),
        }
    )


def _model_mb(model: torch.nn.Module) -> float:
    return sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20


def main() -> None:
    """Run every model on every available device and print one JSON document."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--patch", type=int, nargs=3, default=[64, 64, 3])
    args = parser.parse_args()
    patch = tuple(args.patch)
    monai_patch = tuple(max(16, 16 * round(p / 16)) for p in patch)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    context = mp.get_context("spawn")
    results = []
    for device in devices:
        for name in [*PRESETS, "monai_vnet"]:
            queue: mp.Queue = context.Queue()
            shape = monai_patch if name == "monai_vnet" else patch
            process = context.Process(
                target=_measure, args=(name, shape, args.batch, args.iterations, device, queue)
            )
            process.start()
            process.join()
            if process.exitcode != 0:
                raise SystemExit(
                    f"benchmark of {name} on {device} failed (exit code {process.exitcode})"
                )
            results.append(queue.get(timeout=10))
    print(
        json.dumps(
            {
                "benchmark": "models",
                "torch": torch.__version__,
                "cpu": platform.processor() or platform.machine(),
                "threads": torch.get_num_threads(),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
