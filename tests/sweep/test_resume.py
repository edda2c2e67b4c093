"""A lost driver: the driver's process group (its local Ray too) and its private MLflow
server killed with SIGKILL at each moment of a sweep in turn (before any trial ends, once
some have, during the final refit, during registration), each time ``tune.resume=true``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest

from benchmarks.soak import private_server
from sn_platform import tracking
from tests.sweep.conftest import TINY_SWEEP_EXTRA
from tests.sweep.test_driver import runs_of, sweep_overrides

pytestmark = pytest.mark.slow


def _result_lines(experiment_dir: Path) -> list[list[dict]]:
    """Every trial's reported results (Tune's ``result.json``)."""
    return [
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for path in experiment_dir.glob("*/result.json")
    ]


def _before_any_trial_ends(work: Path) -> bool:
    trials = _result_lines(work / "ray_results" / "demo")
    return any(trials) and not any(r.get("done") for lines in trials for r in lines)


def _some_trials_finished(work: Path) -> bool:
    trials = _result_lines(work / "ray_results" / "demo")
    return any(r.get("done") for lines in trials for r in lines)


def _during_final_refit(work: Path) -> bool:
    return (work / "ray_results" / "demo" / "refit" / "last.pt").exists()


def _during_registration(work: Path) -> bool:
    state = work / "ray_results" / "demo.sn-sweep.json"
    return state.exists() and json.loads(state.read_text()).get("final") is not None


def _lose_driver(command: list[str], work: Path, moment: Callable[[Path], bool]) -> None:
    """Start ``command`` in its own process group; SIGKILL the group and the private
    server once ``moment(work)`` holds."""
    driver = subprocess.Popen(
        command, cwd=work, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    while not moment(work):
        assert driver.poll() is None, driver.stderr.read() if driver.stderr else ""
        assert time.monotonic() < deadline, "the moment never came"
        time.sleep(0.2)
    server = private_server(driver.pid)
    os.killpg(driver.pid, signal.SIGKILL)
    if server is not None:
        os.killpg(server.pid, signal.SIGKILL)  # the server leads a process group of its own
    driver.wait()


def _board(leaderboard: list[dict]) -> list[tuple]:
    return [(e["config_id"], round(e["score"], 4), round(e["val/dsc"], 4)) for e in leaderboard]


MOMENTS = (_before_any_trial_ends, _some_trials_finished, _during_final_refit, _during_registration)


def test_a_driver_lost_at_each_moment_in_turn_resumes_to_the_undisturbed_champion(
    two_site_cohort, tmp_path, tiny_sweep
):
    """One sweep, its driver lost at each moment in turn (each resume lost again at the
    next), then resumed to the end: the same leaderboard and champion as never lost."""
    overrides = sweep_overrides(two_site_cohort, tmp_path, *TINY_SWEEP_EXTRA)
    command = [sys.executable, "-c", "from sn_platform.cli import sweep; sweep()", *overrides]
    folds = tmp_path / "ray_results" / "demo" / "folds"
    for attempt, moment in enumerate(MOMENTS):
        before = {p.name: p.stat().st_mtime_ns for p in folds.glob("*.json")}
        resume = ["tune.resume=true"] if attempt else []
        _lose_driver(
            [*command, *resume, f"hydra.run.dir={tmp_path}/hydra{attempt}"], tmp_path, moment
        )
        # No fold that had finished trained again.
        after = {p.name: p.stat().st_mtime_ns for p in folds.glob("*.json") if p.name in before}
        assert before == after, moment.__name__
    resumed = subprocess.run(
        [*command, "tune.resume=true", f"hydra.run.dir={tmp_path}/hydra-end"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    parents, children = runs_of(f"sqlite:///{tmp_path}/mlflow.db")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    keys = sorted(c.data.tags[tracking.RUN_KEY_TAG] for c in children)
    assert keys == ["c00-fold0", "c00-fold1", "c01-fold0", "c01-fold1", "refit"]
    assert all(c.info.status == "FINISHED" for c in children)
    assert parents[0].data.tags["sn.champion_version"] == "1"
    assert len(mlflow.MlflowClient().search_model_versions("name='sn-vnet'")) == 1
    leaderboard = tmp_path / "ray_results" / "demo" / "leaderboard.tsv"
    lines = [line.split("\t") for line in leaderboard.read_text().splitlines()]
    header = lines[0]
    board = [
        (row[header.index("config_id")], round(float(row[header.index("score")]), 4),
         round(float(row[header.index("val/dsc")]), 4))
        for row in lines[1:]
    ]  # fmt: skip
    assert board == _board(tiny_sweep.outcome.leaderboard)
