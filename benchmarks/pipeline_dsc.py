"""Does the patch pipeline train as TorchIO's queue does? The validation DSC of sn-train after
``--epochs`` epochs on a small phantom (``sn-phantom head=small``), for each of ``--seeds``,
with ``data.pipeline=queue`` and ``data.pipeline=patches``; prints JSON.

    python benchmarks/pipeline_dsc.py [--data DIR] [--subjects 12] [--epochs 12] [--seeds 0 1 2]

Every run is the smoke experiment on CPU (vnet_small, the paper's augmentation) on fold 0 of
one saved split (the split's seed pinned, so only the run's seed changes: the weights' start
and every draw of patches and augmentation), validated once, after the last epoch.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from cohort import small_phantom
from hydra import compose, initialize_config_dir
from report import emit, machine

from sn_platform.composition import CONFIG_DIR
from sn_platform.training.assembly import run_spec
from sn_platform.training.run import train_and_evaluate

PIPELINES = ("queue", "patches")


def validation_dsc(data: Path, work: Path, pipeline: str, seed: int, epochs: int) -> float:
    """Fold 0's validation DSC after ``epochs`` epochs of ``pipeline`` with run seed ``seed``."""
    overrides = [
        "experiment=smoke", f"data.root={data}", f"data.pipeline={pipeline}", f"seed={seed}",
        "data.splits.seed=0", "data.samples_per_volume=8", "optim.lr=3e-3",
        f"trainer.max_epochs={epochs}", f"trainer.val_every={epochs}", "tracking.enabled=false",
        f"trainer.checkpoint_dir={work / f'{pipeline}-{seed}'}",
    ]  # fmt: skip
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        spec = run_spec(compose(config_name="config", overrides=overrides))
    return float(train_and_evaluate(spec).metrics["best/val/dsc"])


def summary(values: list[float]) -> dict[str, float]:
    """Mean and SD (across seeds) of ``values``."""
    return {"mean": round(statistics.mean(values), 4), "sd": round(statistics.stdev(values), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "sn-dsc-bench")
    parser.add_argument("--subjects", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    parser.add_argument("--output", type=Path, help="also keep the JSON in this file")
    arguments = parser.parse_args()
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    data = small_phantom(arguments.data, arguments.subjects, seed=0)
    work = Path(tempfile.mkdtemp(prefix="sn-dsc-"))
    dsc: dict[str, list[float]] = {pipeline: [] for pipeline in PIPELINES}
    seconds: dict[str, float] = dict.fromkeys(PIPELINES, 0.0)
    for seed in arguments.seeds:
        for pipeline in PIPELINES:  # interleaved: a slower spell of the machine hits both
            start = time.perf_counter()
            dsc[pipeline].append(validation_dsc(data, work, pipeline, seed, arguments.epochs))
            seconds[pipeline] += time.perf_counter() - start
    stats = {pipeline: summary(values) for pipeline, values in dsc.items()}
    difference = stats["patches"]["mean"] - stats["queue"]["mean"]
    seed_sd = max(stats["queue"]["sd"], stats["patches"]["sd"])
    figures: dict[str, Any] = {
        "benchmark": "pipeline_training_dsc",
        **machine(),
        "phantom": f"sn-phantom head=small subjects={arguments.subjects} seed=0 sites=[A]",
        "run": "sn-train experiment=smoke fold 0, samples_per_volume 8, lr 3e-3, CPU",
        "epochs": arguments.epochs,
        "seeds": arguments.seeds,
        "val_dsc": {p: [round(v, 4) for v in values] for p, values in dsc.items()},
        "val_dsc_across_seeds": stats,
        "patches_minus_queue": round(difference, 4),
        "difference_in_seed_sds": round(difference / seed_sd, 2) if seed_sd else None,
        "run_seconds": {p: round(s / len(arguments.seeds), 1) for p, s in seconds.items()},
    }
    emit(figures, arguments.output, "training_dsc")


if __name__ == "__main__":
    main()
