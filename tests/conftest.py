"""Shared fixtures: a small phantom cohort generated once per test session."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sn_platform.data.disk_cache import CACHE_ENVIRONMENT
from sn_platform.phantom.plan import SubjectPlan
from sn_platform.phantom.settings import PhantomConfig
from sn_platform.phantom.writer import generate_cohort

# Test cohorts are sn-phantom's small head (head=small, conf/head/small.yaml): a half-size
# head in a 136 x 136 x 40 mm slab, the midbrain up to 8 mm off-centre. Air around the
# head and an off-centre midbrain at the method's voxel size, like the real 220 mm field
# of view, at 40 % of its voxels.


def small_head_config(*overrides: str) -> PhantomConfig:
    """The generator settings of ``sn-phantom head=small`` with ``overrides``."""
    from hydra import compose, initialize_config_dir

    from sn_platform.cli import phantom_config
    from sn_platform.composition import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return phantom_config(compose(config_name="phantom", overrides=["head=small", *overrides]))


@pytest.fixture(scope="session", autouse=True)
def session_disk_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's own disk cache (``data.disk_cache``: registrations and checked
    files), shared with the commands the tests run, so that no test reads what another
    session kept."""
    folder = tmp_path_factory.mktemp("sn-platform-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENVIRONMENT, str(folder))
        yield folder


@pytest.fixture(scope="session")
def phantom_config() -> PhantomConfig:
    return small_head_config("subjects=4", "seed=11", "sites=[A]")


@pytest.fixture(scope="session")
def phantom_cohort(
    tmp_path_factory: pytest.TempPathFactory, phantom_config: PhantomConfig
) -> tuple[Path, list[SubjectPlan]]:
    """Four subjects (2 HC, 2 PD) of site A's protocol, small head, written as BIDS."""
    root = tmp_path_factory.mktemp("phantom")
    plans = generate_cohort(root, phantom_config, n_jobs=2)
    return root, plans


@pytest.fixture(scope="session")
def two_site_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight subjects (4 HC, 4 PD) from sites A (RAS) and B (LAS), as ``sn-phantom`` writes,
    with the small test head and field of view."""
    root = tmp_path_factory.mktemp("two_site")
    generate_cohort(root, small_head_config("subjects=8", "seed=5"), n_jobs=2)
    return root


LOCALISER_URI = "models:/sn-localiser@champion"


@pytest.fixture(scope="session")
def registered_model(two_site_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A smoke-trained cascade registered as ``sn-vnet@champion``: a localiser trained first
    (``experiment=localiser``, registered as ``sn-localiser@champion``) centres the
    segmenter's box and travels inside it. Returns the store's URI."""
    from hydra import compose, initialize_config_dir

    from sn_platform.composition import CONFIG_DIR
    from sn_platform.tracking import load_segmenter_at
    from sn_platform.training.assembly import run_spec
    from sn_platform.training.run import train_and_evaluate

    work = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{work}/mlflow.db"
    common = [
        f"data.root={two_site_cohort}",
        f"tracking.uri={uri}",
        f"tracking.artifact_location={work}/mlruns",
        "tracking.register=true",
        "tracking.alias=champion",
    ]
    localiser = [
        "experiment=localiser",
        "trainer.max_epochs=3",
        "trainer.device=cpu",
        "trainer.progress=false",
        "data.splits.file=${data.root}/splits_smoke.json",
        "data.splits.folds=2",
        "data.splits.test_fraction=0.0",
        f"trainer.checkpoint_dir={work}/localiser",
    ]
    segmenter = [
        "experiment=smoke",
        "trainer.max_epochs=6",
        f"trainer.checkpoint_dir={work}/checkpoints",
        f"localiser={LOCALISER_URI}",
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        for overrides in (localiser, segmenter):
            cfg = compose(config_name="config", overrides=[*common, *overrides])
            train_and_evaluate(run_spec(cfg, load_segmenter_at))
    return uri


@pytest.fixture(scope="session")
def bids_errors() -> Callable[[Path], list[dict[str, Any]]]:
    """A function: dataset folder -> the errors ``bids-validator-deno`` reports on it."""
    name = "bids-validator-deno"
    beside = Path(sys.executable).with_name(name)
    executable = str(beside) if beside.exists() else shutil.which(name)
    if executable is None:
        pytest.skip(f"{name} not installed (it is in the test extra: pip install -e '.[test]')")

    def errors(root: Path) -> list[dict[str, Any]]:
        command = [str(executable), "--format", "json", str(root)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        issues = json.loads(result.stdout)["issues"]["issues"]
        return [issue for issue in issues if issue["severity"] == "error"]

    return errors
