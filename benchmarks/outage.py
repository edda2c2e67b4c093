"""sn-train through a real ``mlflow server``, undisturbed and with the server killed after
epoch 2: wall times, and the epochs the store has after ``sn-track sync``. Prints JSON.

    python benchmarks/outage.py --data data/phantom --epochs 8
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow

from sn_platform.tracking.buffer import Journal
from sn_platform.tracking.server import LocalServer


def _epochs_logged(folder: Path) -> int:
    if not (folder / "state.json").exists():
        return 0
    return sum(r["op"] == "metrics" and "train/loss" in r["metrics"]
               for r in Journal(folder).records())  # fmt: skip


def run(data: Path, epochs: int, outage: bool, work: Path) -> dict[str, object]:
    """One smoke training on ``data``; with ``outage`` the server dies after epoch 2."""
    store = f"sqlite:///{work}/mlflow.db"
    server = LocalServer(store, str(work / "artifacts"))
    server.launch()
    checkpoints = work / "checkpoints"
    command = [
        sys.executable, "-c", "from sn_platform.cli import train; train()", "experiment=smoke",
        f"data.root={data}", f"trainer.max_epochs={epochs}",
        f"trainer.checkpoint_dir={checkpoints}",
        "tracking=server", f"tracking.uri={server.url}", f"hydra.run.dir={work}/hydra",
    ]  # fmt: skip
    started = time.monotonic()
    training = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while outage and _epochs_logged(checkpoints / "tracking") < 2 and training.poll() is None:
        time.sleep(0.2)
    if outage:
        server.kill()
    _, err = training.communicate()
    wall_s = time.monotonic() - started
    if outage:
        server.launch()
        subprocess.run(
            [sys.executable, "-c", "from sn_platform.cli import track; track()", "sync",
             str(checkpoints / "tracking")], check=True, capture_output=True,
        )  # fmt: skip
    server.stop()
    run_id = Journal(checkpoints / "tracking").state()["run_id"]
    history = mlflow.MlflowClient(store).get_metric_history(run_id, "train/loss")
    return {
        "outage": outage, "exit_code": training.returncode, "wall_s": round(wall_s, 1),
        "steps_in_store": [m.step for m in history],
        "warning_lines": sum("does not answer" in line for line in err.splitlines()),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    results = []
    for outage in (False, True):
        with tempfile.TemporaryDirectory() as work:
            results.append(run(args.data.resolve(), args.epochs, outage, Path(work)))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
