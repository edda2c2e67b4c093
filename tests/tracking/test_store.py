"""The tracking edge: flattening, keyed runs, and many concurrent writers through one server."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import mlflow
import pytest

from sn_platform import tracking


def test_flatten_nested_config():
    flat = tracking.flatten({"model": {"depth": 4, "kernel": [3, 3]}, "seed": 0})
    assert flat == {"model.depth": "4", "model.kernel": "[3, 3]", "seed": "0"}


def test_mlflow_keeps_its_warnings_but_not_its_chatter(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", raising=False)
    tracking.configure(f"sqlite:///{tmp_path}/mlflow.db")
    tracking.configure(f"sqlite:///{tmp_path}/mlflow.db")  # twice: still one filter
    assert os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] == "true"
    pyfunc = logging.getLogger("mlflow.pyfunc")
    assert len(pyfunc.filters) == 1
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logging.getLogger("mlflow").addHandler(handler)
    try:
        logging.getLogger("mlflow.store").info("Creating initial MLflow database tables...")
        pyfunc.warning("Passing a Python object as `python_model` causes it to be serialized")
        pyfunc.warning("a real warning")
    finally:
        logging.getLogger("mlflow").removeHandler(handler)
    assert [r.getMessage() for r in seen] == ["a real warning"]


def test_keyed_runs_are_reopened_not_duplicated(tmp_path):
    tracking.configure(f"sqlite:///{tmp_path}/mlflow.db")
    parent = tracking.RunLogger.start("e", "parent", artifact_location=str(tmp_path / "a"))
    first = tracking.RunLogger.start("e", "child", parent_run_id=parent.run_id, key="c00-fold0")
    first.finish("FAILED")
    again = tracking.RunLogger.start("e", "child", parent_run_id=parent.run_id, key="c00-fold0")
    other = tracking.RunLogger.start("e", "child", parent_run_id=parent.run_id, key="c00-fold1")
    assert again.run_id == first.run_id != other.run_id
    assert mlflow.MlflowClient().get_run(again.run_id).info.status == "RUNNING"


def test_an_experiment_keeps_the_view_of_the_compared_metrics(tmp_path):
    tracking.configure(f"sqlite:///{tmp_path}/mlflow.db")
    client = mlflow.MlflowClient()
    old = client.create_experiment("old")  # made without the view's tags
    assert tracking.experiment_id("old") == old
    for name in ("old", "new"):
        tags = client.get_experiment(tracking.experiment_id(name)).tags
        view = json.loads(tags["mlflow.sharedViewState.sn-compared-metrics"])
        assert view["selectedColumns"][3:] == [
            "metrics.`val/dsc`", "metrics.`val/hd95_mm`", "metrics.`val/nm_ratio_icc`",
            "metrics.`val/chi_mean_icc`", "metrics.`train/loss`",
        ]  # fmt: skip
    assert tracking.runs_page(old).endswith("&viewStateShareKey=sn-compared-metrics")


WRITER = """
import sys
from sn_platform import tracking
tracking.configure(sys.argv[1])
run = tracking.RunLogger.start("concurrent", f"writer-{sys.argv[2]}", parent_run_id=sys.argv[3])
for step in range(25):
    run.log_metrics({"val/dsc": step / 25, "train/loss": 1 - step / 25}, step)
run.log_text("done", "done.txt")
run.finish()
"""


@pytest.mark.slow
def test_many_concurrent_writers_log_everything_through_one_server(tmp_path):
    """SQLite allows one writer: 8 processes logging at once through the sweep's server."""
    store = f"sqlite:///{tmp_path}/mlflow.db"
    with tracking.local_server(store, str(tmp_path / "artifacts")) as url:
        tracking.configure(url)
        parent = tracking.RunLogger.start(
            "concurrent", "parent", artifact_location=str(tmp_path / "artifacts")
        )
        writers = [
            subprocess.Popen([sys.executable, "-c", WRITER, url, str(i), parent.run_id])
            for i in range(8)
        ]
        assert [w.wait(timeout=300) for w in writers] == [0] * 8
    tracking.configure(store)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("concurrent")
    runs = client.search_runs(
        [experiment.experiment_id], f"tags.`{tracking.PARENT_TAG}` = '{parent.run_id}'"
    )
    assert len(runs) == 8
    for run in runs:
        assert run.info.status == "FINISHED"
        assert len(client.get_metric_history(run.info.run_id, "val/dsc")) == 25
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["done.txt"]
