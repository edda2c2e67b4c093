"""What a sweep's trials and its final model produce, typed, and where it is kept.

A trial writes each finished fold to ``FOLDS_DIR`` of the experiment folder the moment the
fold ends: the driver collects the folds from there, not from the restored Ray Tune
experiment, so what finished before a lost driver counts after ``tune.resume=true``, and
a restarted trial never trains a finished fold again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sn_platform.data.io import write_text

FOLDS_DIR = "folds"


@dataclass(frozen=True)
class FoldResult:
    """One finished (configuration, fold) training.

    Parameters
    ----------
    config_id : the configuration (``c00``; an Optuna trial's id)
    fold : the fold of the saved split
    overrides : the sampled config key -> value
    metrics : best-epoch metrics (``best/val/dsc``, ...)
    rows : per-subject validation rows (measures, DSC)
    run_id : its MLflow run
    tracking : its tracking journal folder (None: delivered)
    """

    config_id: str
    fold: int
    overrides: dict[str, Any]
    metrics: dict[str, float]
    rows: list[dict[str, Any]] = field(default_factory=list)
    run_id: str | None = None
    tracking: str | None = None


@dataclass(frozen=True)
class FinalResult:
    """The final model (a refit or a fold ensemble): test metrics, model URI, MLflow run."""

    metrics: dict[str, float]
    model_uri: str | None
    run_id: str | None
    tracking: str | None = None


def fold_path(experiment_dir: Path, config_id: str, fold: int) -> Path:
    """The file of one (configuration, fold) result."""
    return experiment_dir / FOLDS_DIR / f"{config_id}-fold{fold}.json"


def write_fold(experiment_dir: Path, result: FoldResult) -> None:
    """Record a finished fold (atomically)."""
    write_text(fold_path(experiment_dir, result.config_id, result.fold), json.dumps(asdict(result)))


def read_fold(path: Path) -> FoldResult:
    """A recorded fold."""
    return FoldResult(**json.loads(path.read_text()))


def read_folds(experiment_dir: Path) -> list[FoldResult]:
    """Every recorded fold, by configuration and fold."""
    results = [read_fold(path) for path in (experiment_dir / FOLDS_DIR).glob("*.json")]
    return sorted(results, key=lambda r: (r.config_id, r.fold))
