"""The ``tune`` config group as one typed object: the search, its schedule and the final model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SEARCH_ALGORITHMS = ("random", "optuna")
SCHEDULERS = ("asha", "none")
FINAL_MODELS = ("refit", "ensemble")


@dataclass(frozen=True)
class CrossValidation:
    """``folds``: the folds of the saved split every configuration runs on (>= 1)."""

    folds: int = 5

    def __post_init__(self) -> None:
        if self.folds < 1:
            raise ValueError(f"cv.folds must be >= 1, got {self.folds}")


@dataclass(frozen=True)
class TuneSettings:
    """A cross-validated sweep.

    Parameters
    ----------
    name : folder under ``storage_path``; resume it with ``resume``
    space : config key (or group) -> one distribution (see ``sweep.space``)
    num_samples : random draws (times every grid combination)
    search_alg : ``random`` (configurations drawn up front, folds in parallel) or ``optuna``
    metric : the per-epoch metric ASHA compares; Optuna learns from its mean over the
        folds at their best epochs
    scheduler : ``asha`` or ``none``; ``grace_period`` (epochs) and ``reduction_factor``
        configure ASHA
    resources_per_trial : Ray resources of a trial, e.g. ``{cpu: 4, gpu: 0.25}`` (four
        trials share a card); its CPU share sets its data workers (``trial_data_workers``)
    max_failures : restarts of a failed trial from its last epoch
    reuse_actors : a trial starts in the process of one that ended (Ray Tune's
        ``reuse_actors``), which has the stack imported and the template read already
    cv : the cross-validation folds
    selection : leaderboard score = sum(weight * metric); ``mode`` max or min
    min_structure_dsc : a configuration whose cross-validated DSC of any structure (SN, RN,
        CC) is below this is ranked after the others and never crowned; None: no floor
    final : ``refit`` on all development subjects, or the ``ensemble`` of the fold models
    alias : registry alias of the final model
    """

    name: str = "sn-sweep"
    storage_path: str = "ray_results"
    resume: bool = False
    space: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    num_samples: int = 4
    seed: int = 0
    search_alg: str = "random"
    scheduler: str = "asha"
    metric: str = "val/dsc"
    grace_period: int = 3
    reduction_factor: float = 2.0
    max_concurrent_trials: int | None = None
    resources_per_trial: Mapping[str, float] = field(default_factory=lambda: {"cpu": 1})
    max_failures: int = 2
    reuse_actors: bool = True
    verbose: int = 1
    cv: CrossValidation = field(default_factory=CrossValidation)
    selection: Mapping[str, float] = field(default_factory=lambda: {"val/dsc": 1.0})
    mode: str = "max"
    min_structure_dsc: float | None = 0.1
    final: str = "refit"
    alias: str = "champion"

    def __post_init__(self) -> None:
        for key, value, allowed in (
            ("search_alg", self.search_alg, SEARCH_ALGORITHMS),
            ("scheduler", self.scheduler, SCHEDULERS),
            ("final", self.final, FINAL_MODELS),
            ("mode", self.mode, ("max", "min")),
        ):
            if value not in allowed:
                raise ValueError(f"{key} {value!r} not in {allowed}")
        for key in ("num_samples", "grace_period"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if not self.selection:
            raise ValueError("selection: give at least one metric and its weight")
        if self.min_structure_dsc is not None and not 0.0 <= self.min_structure_dsc < 1.0:
            raise ValueError(f"min_structure_dsc must be in [0, 1), got {self.min_structure_dsc}")
        if self.search_alg == "optuna" and self.scheduler == "asha" and self.cv.folds > 1:
            raise ValueError(
                "scheduler: ASHA cannot compare Optuna trials that run several folds "
                "in turn; use tune.scheduler=none or tune.search_alg=random"
            )
        resources = {key: float(value) for key, value in self.resources_per_trial.items()}
        object.__setattr__(self, "resources_per_trial", resources)

    @property
    def trial_data_workers(self) -> int:
        """Data workers of a trial: with a GPU share, its whole CPUs but one (the process that
        drives the GPU); without, none: its cores compute the model, which bounds it."""
        cpus = int(self.resources_per_trial.get("cpu", 1))
        return max(0, cpus - 1) if self.resources_per_trial.get("gpu", 0) > 0 else 0

    @property
    def trial_threads(self) -> int:
        """torch threads of a trial's training process: the CPUs its data workers leave."""
        return max(1, int(self.resources_per_trial.get("cpu", 1)) - self.trial_data_workers)
