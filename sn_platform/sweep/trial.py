"""One Ray Tune trial: a configuration on its folds, each fold the ``sn-train`` run, reporting
every epoch with a checkpoint so ASHA can stop it and a failed trial resumes."""

from __future__ import annotations

import getpass
import math
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import torch
from omegaconf import DictConfig
from ray import tune

from sn_platform.cpu_quota import quota_threads
from sn_platform.sweep.compose import compose_training
from sn_platform.sweep.results import FoldResult, fold_path, read_fold, write_fold
from sn_platform.sweep.space import override
from sn_platform.tracking import load_segmenter_at
from sn_platform.training.assembly import run_spec
from sn_platform.training.run import train_and_evaluate
from sn_platform.training.spec import RunContext

# How long a finished fold keeps trying to deliver its tracking journal (the driver
# restarts a dead private server in seconds; what is left it delivers itself at the end).
TRACKING_PATIENCE_S = 60.0


def working_state(experiment: str, trial_id: str) -> Path:
    """The folder where a trial keeps its folds' checkpoints and journals while it runs.

    Not the trial's own folder: Tune copies that folder (with the experiment's state) while
    the trial writes, and the temporary files of its atomic writes vanish under the copy.
    Every report's checkpoint carries this folder to storage, and a restarted trial starts
    from the checkpoint.
    """
    return Path(tempfile.gettempdir()) / f"sn-sweep-{getpass.getuser()}" / experiment / trial_id


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of a sweep shares.

    Parameters
    ----------
    base_overrides : the training overrides of every trial (paths pinned)
    parent_run_id : the sweep's parent MLflow run
    folds : the folds an Optuna trial runs in turn
    space_keys : the sampled config keys (Optuna's config holds them)
    threads : torch threads of a trial (``TuneSettings.trial_threads``)
    experiment_dir : the sweep's Tune folder, where finished folds are recorded
    metric : the metric the searcher learns from (its mean over folds, best epochs)
    """

    base_overrides: list[str]
    parent_run_id: str
    folds: list[int]
    space_keys: list[str]
    threads: int
    experiment_dir: str
    metric: str


def trial_device() -> str:
    """What this trial trains on: ``cuda:0 NAME (Ray GPU ID)``, the card Ray gave it (as its
    ``cuda:0``: Ray sets CUDA_VISIBLE_DEVICES), or ``cpu``."""
    ids = ray.get_gpu_ids()
    if not ids or not torch.cuda.is_available():
        return "cpu"
    return f"cuda:0 {torch.cuda.get_device_name(0)} (Ray GPU {','.join(str(i) for i in ids)})"


def placement(
    trial_id: str, config: Mapping[str, Any], metrics: Mapping[str, Any], gpu_share: float
) -> str:
    """``sn-sweep``'s line for one trial: its configuration and folds, and the device its
    last report names (``trial_device``) with the share of the card it had."""
    variant = config.get("variant") or {"config_id": trial_id, "folds": []}
    folds = ",".join(str(fold) for fold in variant["folds"]) or "all"
    device = str(metrics.get("device", "not reported"))
    share = f" ({gpu_share:g} of the GPU)" if device.startswith("cuda") else ""
    return f"sn-sweep: trial {trial_id} {variant['config_id']} fold {folds}: {device}{share}"


def _variant(config: Mapping[str, Any], setup: TrialSetup, trial_id: str) -> dict[str, Any]:
    """Random search: the config's ``variant`` (config id, one fold, its overrides);
    Optuna: the sampled keys themselves, all folds in this trial."""
    return config.get("variant") or {
        "config_id": trial_id,
        "folds": setup.folds,
        "overrides": {key: config[key] for key in setup.space_keys},
    }


def _restore_state(state: Path) -> None:
    shutil.rmtree(state, ignore_errors=True)  # what a killed attempt left: the checkpoint rules
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as saved:
            shutil.copytree(saved, state, dirs_exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)


def _fold_config(
    variant: Mapping[str, Any], fold: int, setup: TrialSetup, resume: bool
) -> DictConfig:
    """The fold's ``sn-train`` config: the sweep's overrides, the variant's, the fold's."""
    return compose_training(
        [
            *setup.base_overrides,
            *(override(k, v) for k, v in variant["overrides"].items()),
            f"trainer.fold={fold}",
            f"trainer.resume={resume}",
            "trainer.progress=false",
            "tracking.log_model=false",
            "tracking.register=false",
            f"run_name={variant['config_id']}-fold{fold}",
        ]
    )


def _train_fold(
    variant: Mapping[str, Any], fold: int, setup: TrialSetup, state: Path, trial_id: str,
    device: str,
) -> FoldResult:  # fmt: skip
    """One fold, the ``sn-train`` run, reporting every epoch with a checkpoint of ``state``."""
    config_id = str(variant["config_id"])
    fold_dir = state / f"fold-{fold}"
    cfg = _fold_config(variant, fold, setup, resume=(fold_dir / "last.pt").exists())

    def report(metrics: Mapping[str, float], epoch: int) -> None:
        tune.report(
            {**metrics, "fold": fold, "epoch": epoch, "device": device},
            checkpoint=tune.Checkpoint.from_directory(str(state)),
        )

    context = RunContext(
        report=report,
        checkpoint_dir=fold_dir,
        parent_run_id=setup.parent_run_id,
        run_key=f"{config_id}-fold{fold}",
        tags={
            "sn.config_id": config_id,
            "sn.trial_id": trial_id,
            "sn.node_id": ray.get_runtime_context().get_node_id(),
            "sn.trial_device": device,
        },
        tracking_patience_s=TRACKING_PATIENCE_S,
    )
    outcome = train_and_evaluate(run_spec(cfg, load_segmenter_at), context)
    return FoldResult(
        config_id,
        fold,
        dict(variant["overrides"]),
        outcome.metrics,
        outcome.evaluations["val"].rows,
        outcome.run_id,
        str(outcome.tracking_folder) if outcome.tracking_folder else None,
    )


def run_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """A Ray Tune function trainable: one configuration on its folds, one after another,
    each finished fold recorded (``results.write_fold``) and skipped when it restarts."""
    trial = tune.get_context()
    trial_id = trial.get_trial_id()
    variant = _variant(config, setup, trial_id)
    torch.set_num_threads(quota_threads(setup.threads))
    device = trial_device()
    state = working_state(trial.get_experiment_name(), trial_id)
    _restore_state(state)
    experiment_dir = Path(setup.experiment_dir)
    config_id = str(variant["config_id"])
    values = []
    for fold in variant["folds"]:
        path = fold_path(experiment_dir, config_id, fold)
        if path.exists():
            result = read_fold(path)
        else:
            result = _train_fold(variant, fold, setup, state, trial_id, device)
            write_fold(experiment_dir, result)
        values.append(result.metrics.get(f"best/{setup.metric}", math.nan))
    tune.report(
        {
            "done": 1.0,  # Tune ends the trial on this report
            setup.metric: sum(values) / len(values) if values else math.nan,
            "config_id": config_id,
            "device": device,
        },
        checkpoint=tune.Checkpoint.from_directory(str(state)),
    )
