"""The benchmarks' phantom: ``sn-phantom head=small`` (a half-size geometric head in a 136 mm
slab), written once into a folder and reused."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def small_phantom(data: Path, subjects: int, seed: int, sites: Sequence[str] = ("A",)) -> Path:
    """``data``, holding ``subjects`` small-head subjects of ``sites`` (written unless there)."""
    if not (data / "participants.tsv").exists():
        subprocess.run(
            [sys.executable, "-c", "from sn_platform.cli import phantom; phantom()",
             f"out={data}", f"subjects={subjects}", f"seed={seed}", "head=small",
             f"sites=[{','.join(sites)}]", f"hydra.run.dir={data}.hydra"],
            check=True,
        )  # fmt: skip
    return data
