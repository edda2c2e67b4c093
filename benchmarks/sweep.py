"""The platform's overhead per trial: one training run through sn-sweep vs sn-train; JSON.

    python benchmarks/sweep.py --data data/phantom [--epochs 5] [--work /tmp/bench-sweep]

The same configuration (demo size: the phantom given, fold 0, vnet_small) is trained
twice: in-process as ``sn-train`` does (SQLite MLflow store), and as the single trial of a
1-configuration, 1-fold sweep (Ray Tune + MLflow server + a checkpoint per epoch). The
trial's wall time comes from Tune (``time_total_s``); the sweep's fixed costs (MLflow
server start, Ray start, refit) are reported separately.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from sn_platform.composition import CONFIG_DIR
from sn_platform.sweep.driver import run_sweep
from sn_platform.training.assembly import run_spec
from sn_platform.training.run import train_and_evaluate


def _compose(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/phantom"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--work", type=Path, default=Path("/tmp/sn-bench-sweep"))
    arguments = parser.parse_args()
    shutil.rmtree(arguments.work, ignore_errors=True)
    common = [
        f"data.root={arguments.data.resolve()}",
        f"trainer.max_epochs={arguments.epochs}",
        "trainer.progress=false",
        "trainer.device=cpu",
        "tracking.log_model=false",
    ]
    train_work = arguments.work / "train"
    start = time.perf_counter()
    train_and_evaluate(
        run_spec(
            _compose(
                "config",
                [
                    *common,
                    f"tracking.uri=sqlite:///{train_work}/mlflow.db",
                    f"tracking.artifact_location={train_work}/mlruns",
                    f"trainer.checkpoint_dir={train_work}/checkpoints",
                ],
            )
        )
    )
    train_seconds = time.perf_counter() - start

    sweep_work = arguments.work / "sweep"
    overrides = [
        *common,
        f"tracking.uri=sqlite:///{sweep_work}/mlflow.db",
        f"tracking.artifact_location={sweep_work}/mlruns",
        f"tune.storage_path={sweep_work}/ray_results",
        "tune.name=bench",
        "tune.num_samples=1",
        "tune.cv.folds=1",
        "tune.scheduler=none",
        "tune.verbose=0",
        "ray.num_cpus=2",
        "tune.resources_per_trial.cpu=2",  # the trial gets the cores sn-train has
        "tune/space=none",
        "tune.min_structure_dsc=null",  # a benchmark of cost: crowned however short
    ]
    start = time.perf_counter()
    outcome = run_sweep(_compose("sweep", overrides), overrides)
    sweep_seconds = time.perf_counter() - start
    from ray import tune

    trial = tune.ExperimentAnalysis(str(outcome.experiment_dir)).trials[0]
    trial_seconds = float(trial.last_result["time_total_s"])
    print(
        json.dumps(
            {
                "benchmark": "sweep_overhead",
                "machine": platform.processor() or platform.machine(),
                "epochs": arguments.epochs,
                "sn_train_seconds": round(train_seconds, 2),
                "sweep_trial_seconds": round(trial_seconds, 2),
                "trial_overhead_ratio": round(trial_seconds / train_seconds - 1.0, 4),
                "sn_sweep_total_seconds": round(sweep_seconds, 2),
                "sweep_fixed_seconds": round(sweep_seconds - trial_seconds, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
