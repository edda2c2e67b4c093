"""A tracking outage mid-training: the run goes on at full speed and exits 0; once the
store is back, ``sn-track sync`` delivers every epoch with its step."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from sn_platform.tracking.buffer import Journal
from sn_platform.tracking.server import LocalServer

pytestmark = pytest.mark.slow
EPOCHS = 8


def epochs(folder: Path) -> list[dict]:
    """The journal's per-epoch metric records."""
    if not (folder / "state.json").exists():
        return []
    records = Journal(folder).records()
    return [r for r in records if r["op"] == "metrics" and "train/loss" in r["metrics"]]


def test_server_killed_mid_training_loses_nothing_and_blocks_nothing(two_site_cohort, tmp_path):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    server = LocalServer(store, str(tmp_path / "artifacts"))
    server.launch()
    checkpoints = tmp_path / "checkpoints"
    command = [
        sys.executable, "-c", "from sn_platform.cli import train; train()",
        "experiment=smoke", f"data.root={two_site_cohort}", f"trainer.max_epochs={EPOCHS}",
        # The tracking, not accuracy: 1 x 1 x 2 mm voxels and small patches keep epochs short.
        "data.patch_size=[32,32,3]", "data.samples_per_volume=2",
        "data.preprocessing.spacing_mm=[1.0,1.0,2.0]",
        f"trainer.checkpoint_dir={checkpoints}", "tracking=server", f"tracking.uri={server.url}",
        f"hydra.run.dir={tmp_path}/hydra",
    ]  # fmt: skip
    started = time.monotonic()
    training = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    journal = checkpoints / "tracking"
    while len(epochs(journal)) < 2 and training.poll() is None:
        time.sleep(0.2)
    server.kill()  # the store dies after epoch 2
    killed_at = time.monotonic()
    out, err = training.communicate(timeout=600)
    wall_s = time.monotonic() - started
    assert training.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    assert sum("does not answer" in line for line in err.splitlines()) == 1
    assert f"sn-track sync {journal}" in out
    assert [r["step"] for r in epochs(journal)] == list(range(1, EPOCHS + 1))
    # Full speed: the epochs after the outage take as long as before it.
    stamps = [r["timestamp"] / 1000 for r in epochs(journal)]
    before = stamps[1] - stamps[0]
    after = max(b - a for a, b in itertools.pairwise(stamps[1:]))
    assert after < 2 * before + 5, (before, after)
    print(
        f"OUTAGE-TIMING wall {wall_s:.1f} s; epoch before the outage {before:.1f} s, slowest "
        f"after it {after:.1f} s; store dead for the last {time.monotonic() - killed_at:.1f} s"
    )

    server.launch()  # the store is back: the same port, the same database
    try:
        synced = subprocess.run(
            [sys.executable, "-c", "from sn_platform.cli import track; track()", "sync",
             str(journal)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        server.stop()
    assert synced.returncode == 0, synced.stderr[-2000:]
    client = mlflow.MlflowClient(store)
    run_id = Journal(journal).state()["run_id"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    for key in ("train/loss", "val/dsc"):
        assert [m.step for m in client.get_metric_history(run_id, key)] == list(
            range(1, EPOCHS + 1)
        )
    assert "best/val/dsc" in run.data.metrics
    assert {a.path for a in client.list_artifacts(run_id)} >= {"config", "evaluation"}
    model_uri = Journal(journal).state()["model_uri"]
    mlflow.set_tracking_uri(store)
    assert model_uri is not None and mlflow.pyfunc.load_model(model_uri) is not None
