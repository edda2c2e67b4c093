"""The sweep's final model: the best configuration refit on all development subjects, or its
fold models as one probability-averaging ensemble; either evaluated on the test split."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from sn_platform.cpu_quota import quota_threads
from sn_platform.sweep.compose import compose_training
from sn_platform.sweep.results import FinalResult
from sn_platform.sweep.trial import TRACKING_PATIENCE_S
from sn_platform.tracking import load_segmenter_at
from sn_platform.training.assembly import run_spec
from sn_platform.training.run import evaluate_ensemble, train_and_evaluate
from sn_platform.training.spec import RunContext


def refit_or_ensemble(
    overrides: list[str],
    directory: str,
    parent_run_id: str,
    threads: int,
    members: list[str] | None = None,
) -> FinalResult:
    """Refit the chosen configuration (``members`` None) or evaluate its fold models
    ``members`` as an ensemble; logged as a nested run ``refit`` or ``ensemble``."""
    torch.set_num_threads(quota_threads(threads))
    name = "refit" if members is None else "ensemble"
    logged = [*overrides, "tracking.log_model=true", "tracking.register=false", f"run_name={name}"]
    context = RunContext(
        checkpoint_dir=Path(directory), parent_run_id=parent_run_id, run_key=name,
        tracking_patience_s=TRACKING_PATIENCE_S,
    )  # fmt: skip
    if members is None:
        resume = (Path(directory) / "last.pt").exists()
        refit = ["trainer.fold=null", "trainer.evaluate_test=true", f"trainer.resume={resume}"]
        spec = run_spec(
            compose_training([*logged, *refit, "trainer.progress=false"]), load_segmenter_at
        )
        outcome = train_and_evaluate(spec, context)
    else:
        spec = run_spec(compose_training(logged), load_segmenter_at)
        folds = [member_fold(f) for f in members]
        outcome = evaluate_ensemble(spec, [Path(f) for f in members], context, folds)
    journal = str(outcome.tracking_folder) if outcome.tracking_folder else None
    return FinalResult(outcome.metrics, outcome.model_uri, outcome.run_id, journal)


def member_fold(weights: str) -> int:
    """The fold a member's weights were trained on, from its name (``fold-<k>.pt``,
    ``collect_fold_weights``)."""
    return int(Path(weights).stem.removeprefix("fold-"))


def collect_fold_weights(grid: Any, config_id: str, destination: Path) -> list[str]:
    """Copy the best weights of every fold of ``config_id`` out of its trials' last
    checkpoints (each holds the folds that trial ran)."""
    destination.mkdir(parents=True, exist_ok=True)
    files = []
    for result in grid:
        if (result.metrics or {}).get("config_id") != config_id or result.checkpoint is None:
            continue
        with result.checkpoint.as_directory() as saved:
            for weights in Path(saved).glob("fold-*/best.pt"):
                target = destination / f"{weights.parent.name}.pt"
                shutil.copyfile(weights, target)
                files.append(str(target))
    return sorted(files)
