"""The tracking journal: a dead store never blocks a run, and the history arrives later with
its original steps and timestamps."""

from __future__ import annotations

import socket
import time

import mlflow

from sn_platform import tracking
from sn_platform.cli import track
from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.inference.atlas import AtlasLocaliser
from sn_platform.inference.predictor import InferenceSettings
from sn_platform.models.factory import build_module
from sn_platform.tracking.buffer import BufferedRun, Journal


def dead_store() -> str:
    """An http URI nothing listens on (the port was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


START = {
    "experiment": "buffered", "run_name": "r", "tags": {"sn.fold": "0"},
    "artifact_location": None, "parent_run_id": None, "key": None,
}  # fmt: skip


def test_dead_store_costs_one_line_and_no_time_then_sync_delivers_everything(tmp_path, capsys):
    folder = tmp_path / "checkpoints" / "tracking"
    run = BufferedRun.open(folder, dead_store(), START, resume=False, retry_s=0.2)
    started = time.perf_counter()
    stamps = []
    for epoch in range(1, 21):
        run.log_metrics({"train/loss": 1 / epoch, "val/dsc": epoch / 20}, epoch)
        stamps.append(Journal(folder).records()[-1]["timestamp"])
        time.sleep(0.01)
    run.log_params({"model.depth": 3})
    (tmp_path / "table.tsv").write_text("a\tb\n1\t2\n")
    run.log_artifact(tmp_path / "table.tsv", "evaluation")
    run.log_text("seed: 0\n", "config/config.yaml")
    run.finish()
    logging_s = time.perf_counter() - started
    assert logging_s < 20 * 0.01 + 1.0  # the loop never waits on the store
    assert run.close() is False and run.run_id is None
    warnings = [line for line in capsys.readouterr().err.splitlines() if "does not answer" in line]
    assert len(warnings) == 1 and str(folder) in warnings[0]
    assert Journal(folder).pending() == 1 + 20 + 1 + 2 + 1

    store = f"sqlite:///{tmp_path}/mlflow.db"
    track(["sync", str(folder), "--uri", store])
    assert "25 records delivered" in capsys.readouterr().out
    state = Journal(folder).state()
    client = mlflow.MlflowClient(store)
    history = client.get_metric_history(state["run_id"], "val/dsc")
    assert [(m.step, m.value, m.timestamp) for m in history] == [
        (epoch, epoch / 20, stamp) for epoch, stamp in zip(range(1, 21), stamps, strict=True)
    ]
    found = client.get_run(state["run_id"])
    assert found.info.status == "FINISHED" and found.data.params == {"model.depth": "3"}
    assert found.data.tags["sn.fold"] == "0"
    paths = {a.path for a in client.list_artifacts(state["run_id"], "evaluation")}
    assert paths == {"evaluation/table.tsv"}
    assert client.list_artifacts(state["run_id"], "config")[0].path == "config/config.yaml"
    track(["sync", str(folder)])  # a second sync sends nothing and duplicates nothing
    assert "0 records delivered" in capsys.readouterr().out
    assert len(client.get_metric_history(state["run_id"], "val/dsc")) == 20


def test_replaying_a_delivered_record_again_is_harmless(tmp_path):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    folder = tmp_path / "tracking"
    run = BufferedRun.open(folder, store, START, resume=False)
    for epoch in (1, 2, 3):
        run.log_metrics({"val/dsc": epoch / 10}, epoch)
    run.log_params({"seed": 0})
    run.finish()
    assert run.close() is True
    journal = Journal(folder)
    journal.update_state(sent=1)  # a crash after sending, before noting it
    tracking.sync(folder)
    client = mlflow.MlflowClient(store)
    assert [m.step for m in client.get_metric_history(run.run_id, "val/dsc")] == [1, 2, 3]


def test_resumed_run_continues_its_journal_and_run(tmp_path):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    folder = tmp_path / "tracking"
    first = BufferedRun.open(folder, store, START, resume=False)
    first.log_metrics({"val/dsc": 0.1}, 1)
    first.finish("KILLED")
    first.close()
    again = BufferedRun.open(folder, store, START, resume=True)
    again.log_metrics({"val/dsc": 0.2}, 2)
    again.finish()
    assert again.close() is True and again.run_id == first.run_id
    client = mlflow.MlflowClient(store)
    assert [m.step for m in client.get_metric_history(first.run_id, "val/dsc")] == [1, 2]
    assert client.get_run(first.run_id).info.status == "FINISHED"


def test_fresh_run_sets_an_undelivered_journal_aside(tmp_path, capsys):
    folder = tmp_path / "tracking"
    old = BufferedRun.open(folder, dead_store(), START, resume=False)
    old.log_metrics({"val/dsc": 0.1}, 1)
    old.close()
    new = BufferedRun.open(folder, f"sqlite:///{tmp_path}/m.db", START, resume=False)
    new.close()
    (kept,) = [p for p in tmp_path.iterdir() if p.name.startswith("tracking-")]
    assert Journal(kept).pending() == 2 and f"sn-track sync {kept}" in capsys.readouterr().err


def test_an_atlas_localiser_travels_through_the_journal_into_the_model(tmp_path, capsys):
    network = {
        "_target_": "sn_platform.models.vnet.VNet", "in_channels": 1, "out_channels": 1,
        "depth": 3, "base_filters": 2, "convs_per_stage": [1, 1, 1], "patch_size": [8, 8, 4],
    }  # fmt: skip
    spec = PreprocessingSpec(channels=("echo-1",), min_shape=(8, 8, 4), roi_mm=(16.0, 16.0, 8.0))
    settings = InferenceSettings(patch_size=(8, 8, 4), patch_overlap=(0, 0, 0))
    atlas = AtlasLocaliser(centre_mni_mm=(0.5, -18.0, -12.0))
    folder = tmp_path / "tracking"
    run = BufferedRun.open(folder, dead_store(), START, resume=False, retry_s=0.2)
    run.log_model(build_module(network), network, spec, settings, localiser=atlas)
    run.finish()
    run.close()
    store = f"sqlite:///{tmp_path}/mlflow.db"
    track(["sync", str(folder), "--uri", store])
    tracking.configure(store)
    loaded = tracking.load_segmenter(str(Journal(folder).state()["model_uri"]))
    assert loaded.localiser == atlas
