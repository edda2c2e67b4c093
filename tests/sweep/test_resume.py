"""An interrupted driver at each moment of a sweep in turn, each time ``tune.resume=true``:
lost (its process group, its local Ray too, and its private MLflow server killed with
SIGKILL) before any trial ends, during the final refit and during registration; stopped
with Ctrl-C once some trials have finished."""

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


def _finished_trial_results(work: Path) -> dict[Path, str]:
    """The ``result.json`` of every trial that has finished, by path."""
    results = (work / "ray_results" / "demo").glob("*/result.json")
    return {
        path: path.read_text()
        for path in results
        if any(json.loads(line).get("done") for line in path.read_text().splitlines() if line)
    }


def _some_trials_finished(work: Path) -> bool:
    return bool(_finished_trial_results(work))


def _during_final_refit(work: Path) -> bool:
    return (work / "ray_results" / "demo" / "refit" / "last.pt").exists()


def _during_registration(work: Path) -> bool:
    state = work / "ray_results" / "demo.sn-sweep.json"
    return state.exists() and json.loads(state.read_text()).get("final") is not None


def _wait_for(driver: subprocess.Popen[str], work: Path, moment: Callable[[Path], bool]) -> None:
    deadline = time.monotonic() + 600
    while not moment(work):
        assert driver.poll() is None, driver.stderr.read() if driver.stderr else ""
        assert time.monotonic() < deadline, "the moment never came"
        time.sleep(0.2)


def _start(command: list[str], work: Path) -> subprocess.Popen[str]:
    """``command`` in its own process group, as a terminal's job."""
    return subprocess.Popen(
        command, cwd=work, start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _lose_driver(command: list[str], work: Path, moment: Callable[[Path], bool]) -> None:
    """SIGKILL the group of ``command`` and its private server once ``moment(work)`` holds."""
    driver = _start(command, work)
    _wait_for(driver, work, moment)
    server = private_server(driver.pid)
    os.killpg(driver.pid, signal.SIGKILL)
    if server is not None:
        os.killpg(server.pid, signal.SIGKILL)  # the server leads a process group of its own
    driver.wait()


def _interrupt_driver(command: list[str], work: Path, moment: Callable[[Path], bool]) -> str:
    """Ctrl-C (SIGINT) to ``command`` once ``moment(work)`` holds; its standard error."""
    driver = _start(command, work)
    _wait_for(driver, work, moment)
    driver.send_signal(signal.SIGINT)
    _, error = driver.communicate(timeout=180)
    assert driver.returncode != 0, error[-3000:]
    return error


def _board(leaderboard: list[dict]) -> list[tuple]:
    return [(e["config_id"], round(e["score"], 4), round(e["val/dsc"], 4)) for e in leaderboard]


MOMENTS = (_before_any_trial_ends, _some_trials_finished, _during_final_refit, _during_registration)
CTRL_C_MOMENT = _some_trials_finished


def test_a_driver_stopped_at_each_moment_in_turn_resumes_to_the_undisturbed_champion(
    two_site_cohort, tmp_path, tiny_sweep
):
    """One sweep, its driver lost or stopped at each moment in turn (each resume stopped
    again at the next), then resumed to the end: nothing finished ran again or was logged
    twice, and the same leaderboard and champion as never stopped."""
    overrides = sweep_overrides(two_site_cohort, tmp_path, *TINY_SWEEP_EXTRA)
    command = [sys.executable, "-c", "from sn_platform.cli import sweep; sweep()", *overrides]
    folds = tmp_path / "ray_results" / "demo" / "folds"
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    for attempt, moment in enumerate(MOMENTS):
        before = {p.name: p.stat().st_mtime_ns for p in folds.glob("*.json")}
        resume = ["tune.resume=true"] if attempt else []
        attempt_command = [*command, *resume, f"hydra.run.dir={tmp_path}/hydra{attempt}"]
        if moment is CTRL_C_MOMENT:
            error = _interrupt_driver(attempt_command, tmp_path, moment)
            assert "resume with tune.resume=true tune.name=demo" in error, error[-3000:]
            results_at_ctrl_c = _finished_trial_results(tmp_path)
            runs_at_ctrl_c = [c for c in runs_of(uri)[1] if c.info.status == "FINISHED"]
        else:
            _lose_driver(attempt_command, tmp_path, moment)
        # No fold that had finished trained again.
        after = {p.name: p.stat().st_mtime_ns for p in folds.glob("*.json") if p.name in before}
        assert before == after, moment.__name__
    resumed = subprocess.run(
        [*command, "tune.resume=true", f"hydra.run.dir={tmp_path}/hydra-end"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for path, text in results_at_ctrl_c.items():
        assert path.read_text() == text, f"{path.parent.name} ran again"
    client = mlflow.MlflowClient()
    assert runs_at_ctrl_c
    for run in runs_at_ctrl_c:
        assert client.get_run(run.info.run_id).info.end_time == run.info.end_time
    parents, children = runs_of(uri)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    keys = sorted(c.data.tags[tracking.RUN_KEY_TAG] for c in children)
    assert keys == ["c00-fold0", "c00-fold1", "c01-fold0", "c01-fold1", "refit"]
    assert all(c.info.status == "FINISHED" for c in children)
    assert parents[0].data.tags["sn.champion_version"] == "1"
    assert len(client.search_model_versions("name='sn-vnet'")) == 1
    leaderboard = tmp_path / "ray_results" / "demo" / "leaderboard.tsv"
    lines = [line.split("\t") for line in leaderboard.read_text().splitlines()]
    header = lines[0]
    board = [
        (row[header.index("config_id")], round(float(row[header.index("score")]), 4),
         round(float(row[header.index("val/dsc")]), 4))
        for row in lines[1:]
    ]  # fmt: skip
    assert board == _board(tiny_sweep.outcome.leaderboard)
