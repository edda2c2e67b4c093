"""Shared fixtures: a small phantom cohort generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from sn_platform.data.cohort import generate_cohort
from sn_platform.data.phantom import PhantomConfig, SubjectPlan


@pytest.fixture(scope="session")
def phantom_config() -> PhantomConfig:
    return PhantomConfig(subjects=4, seed=11)


@pytest.fixture(scope="session")
def phantom_cohort(
    tmp_path_factory: pytest.TempPathFactory, phantom_config: PhantomConfig
) -> tuple[Path, list[SubjectPlan]]:
    """Four subjects (2 HC, 2 PD) of the default site written as BIDS."""
    root = tmp_path_factory.mktemp("phantom")
    plans = generate_cohort(root, phantom_config, n_jobs=2)
    return root, plans
