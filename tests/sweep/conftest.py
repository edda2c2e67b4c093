"""One tiny sweep shared by the tests that read a finished, undisturbed sweep."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from sn_platform.sweep.driver import SweepOutcome
from tests.sweep.test_driver import compose_sweep, sweep_overrides

TINY_SWEEP_EXTRA = ("ray.num_cpus=2", "tune.verbose=0")


@dataclass(frozen=True)
class FinishedSweep:
    """A sweep run to the end: its outcome and the folder its stores are under."""

    outcome: SweepOutcome
    work: Path


@pytest.fixture(scope="session")
def tiny_sweep(two_site_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> FinishedSweep:
    """The tiny sweep (``test_driver.TINY``, 2 configurations x 2 folds and a refit) run once
    to the end on a local Ray, tracked in ``work/mlflow.db``."""
    import ray

    from sn_platform.sweep.driver import run_sweep

    work = tmp_path_factory.mktemp("tiny_sweep")
    overrides = sweep_overrides(two_site_cohort, work, *TINY_SWEEP_EXTRA)
    outcome = run_sweep(compose_sweep(overrides), overrides)
    ray.shutdown()
    return FinishedSweep(outcome, work)
