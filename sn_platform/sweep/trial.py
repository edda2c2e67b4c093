"""One Ray Tune trial: a configuration on its folds, each fold the ``sn-train`` run, reporting
every epoch with a checkpoint so ASHA can stop it and a failed trial resumes."""

from __future__ import annotations

import getpass
import json
import math
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from sn_platform.data.io import write_text
from sn_platform.sweep.compose import compose_training
from sn_platform.sweep.space import override
from sn_platform.tracking import load_segmenter_at
from sn_platform.training.assembly import run_spec
from sn_platform.training.run import train_and_evaluate
from sn_platform.training.spec import RunContext

FINISHED_FILE = "finished.json"
# How long a finished fold keeps trying to deliver its tracking journal (the driver
# restarts a dead private server in seconds; what is left it delivers itself at the end).
TRACKING_PATIENCE_S = 60.0


def _read_finished(state: Path) -> dict[str, Any]:
    path = state / FINISHED_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def working_state(experiment: str, trial_id: str) -> Path:
    """The folder where a trial keeps its folds' checkpoints and journals while it runs.

    Not the trial's own folder: Tune copies that folder (with the experiment's state) while
    the trial writes, and the temporary files of its atomic writes vanish under the copy.
    Every report's checkpoint carries this folder to storage, and a restarted trial starts
    from the checkpoint.
    """
    return Path(tempfile.gettempdir()) / f"sn-sweep-{getpass.getuser()}" / experiment / trial_id


def run_trial(
    config: dict[str, Any],
    base_overrides: list[str],
    parent_run_id: str,
    folds: list[int],
    space_keys: list[str],
    threads: int,
) -> None:
    """A Ray Tune function trainable: one configuration on its folds, one after another.

    ``config`` holds ``variant`` (random search: config id, one fold, its overrides) or the
    sampled keys themselves (Optuna: all folds run in this trial).
    """
    trial = tune.get_context()
    context_id = trial.get_trial_id()
    variant = config.get("variant") or {
        "config_id": context_id,
        "folds": folds,
        "overrides": {key: config[key] for key in space_keys},
    }
    torch.set_num_threads(max(1, threads))
    state = working_state(trial.get_experiment_name(), context_id)
    shutil.rmtree(state, ignore_errors=True)  # what a killed attempt left: the checkpoint rules
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as saved:
            shutil.copytree(saved, state, dirs_exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)
    finished = _read_finished(state)
    config_id = str(variant["config_id"])
    sampled = [override(k, v) for k, v in variant["overrides"].items()]
    for fold in variant["folds"]:
        if str(fold) in finished:
            continue
        fold_dir = state / f"fold-{fold}"
        cfg = compose_training(
            [
                *base_overrides,
                *sampled,
                f"trainer.fold={fold}",
                f"trainer.resume={(fold_dir / 'last.pt').exists()}",
                "trainer.progress=false",
                "tracking.log_model=false",
                "tracking.register=false",
                f"run_name={config_id}-fold{fold}",
            ]
        )

        def report(metrics: Mapping[str, float], epoch: int, fold: int = fold) -> None:
            tune.report(
                {**metrics, "fold": fold, "epoch": epoch},
                checkpoint=tune.Checkpoint.from_directory(str(state)),
            )

        context = RunContext(
            report=report,
            checkpoint_dir=fold_dir,
            parent_run_id=parent_run_id,
            run_key=f"{config_id}-fold{fold}",
            tags={
                "sn.config_id": config_id,
                "sn.trial_id": context_id,
                "sn.node_id": ray.get_runtime_context().get_node_id(),
            },
            tracking_patience_s=TRACKING_PATIENCE_S,
        )
        outcome = train_and_evaluate(run_spec(cfg, load_segmenter_at), context)
        finished[str(fold)] = {
            "metrics": outcome.metrics,
            "rows": outcome.evaluations["val"].rows,
            "run_id": outcome.run_id,
            "tracking": str(outcome.tracking_folder) if outcome.tracking_folder else None,
        }
        write_text(state / FINISHED_FILE, json.dumps(finished))
    dice = [f["metrics"].get("best/val/dsc", math.nan) for f in finished.values()]
    tune.report(
        {
            "done": 1.0,
            "val/dsc": sum(dice) / len(dice) if dice else math.nan,  # what Optuna learns from
            "config_id": config_id,
            "finished": json.dumps(finished),
            "overrides": json.dumps(variant["overrides"]),
            "node_id": ray.get_runtime_context().get_node_id(),
        },
        checkpoint=tune.Checkpoint.from_directory(str(state)),
    )
