"""Soak of ``sn-sweep``: concurrent trials on the local Ray, one trial process
killed (SIGKILL) at a fixed interval and the private MLflow server killed once; then every
(configuration, fold) must have exactly one finished child run with its full metric
history, and the champion must be registered. ``--undisturbed`` runs the same sweep without
kills, for the wall-time baseline. Prints JSON (and writes it with ``--out``).

    python benchmarks/soak.py --data data/soak --work soak --minutes 20 --kill-every 120

``--data`` is a phantom cohort (made with the small test head when the folder is missing).
The sweep: ``experiment=smoke``, the default space, ``--configs`` random configurations x 2
folds, as many concurrent trials (one Ray CPU each), ``tune.max_failures=-1`` (a killed
trial restarts from its last epoch, however often it is killed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mlflow

from sn_platform import tracking

FOLDS = 2
# The small test head (tests/conftest.py's two-site cohort): seconds per trial epoch.
# Ray names a process by what it runs: a trial's actor, not the idle workers or raylet.
TRIAL_PROCESS_MARKERS = ("ImplicitFunc", "run_trial")


@dataclass
class Disturbance:
    """What the soak did to the sweep while it ran."""

    trials_killed: int = 0
    server_kills: int = 0
    kill_times_s: list[float] = field(default_factory=list)


def sweep_overrides(data: Path, work: Path, configs: int, epochs: int) -> list[str]:
    """``sn-sweep`` overrides of the soak's sweep: ``configs`` x 2 folds, all concurrent."""
    return [
        "experiment=smoke", "tune/space=default", f"tune.num_samples={configs}",
        f"tune.cv.folds={FOLDS}", "tune.scheduler=none", "tune.max_failures=-1",
        "tune.name=soak", "tune.verbose=0", "~tune.selection", "+tune.selection={val/dsc:1.0}",
        "tune.min_structure_dsc=null", f"ray.num_cpus={configs * FOLDS}",
        f"trainer.max_epochs={epochs}",
        "data.patch_size=[32,32,3]", "data.samples_per_volume=2",
        "data.preprocessing.spacing_mm=[1.0,1.0,2.0]", f"data.root={data}",
        f"tune.storage_path={work}/ray_results", f"tracking.uri=sqlite:///{work}/mlflow.db",
        f"tracking.artifact_location={work}/mlruns", f"hydra.run.dir={work}/hydra",
    ]  # fmt: skip


@dataclass(frozen=True)
class ProcessEntry:
    """One line of ``ps``: pid, parent pid and the command line (Ray retitles its workers)."""

    pid: int
    parent: int
    command: str


def processes() -> list[ProcessEntry]:
    """Every process of the machine, from ``ps``, with whole command lines (``-ww``: ps
    otherwise cuts them at its idea of the terminal's width)."""
    listing = subprocess.run(
        ["ps", "-ww", "-eo", "pid=,ppid=,args="], capture_output=True, text=True, check=True
    ).stdout
    entries = []
    for line in listing.splitlines():
        pid, parent, *command = line.split(None, 2)
        entries.append(ProcessEntry(int(pid), int(parent), command[0] if command else ""))
    return entries


def descendants(root: int, entries: list[ProcessEntry]) -> list[ProcessEntry]:
    """The processes below ``root`` in the process tree."""
    below, frontier = [], {root}
    while frontier:
        found = [e for e in entries if e.parent in frontier]
        below += found
        frontier = {e.pid for e in found}
    return below


def trial_processes(driver: int) -> list[ProcessEntry]:
    """The driver's descendants that run a trial (Ray's actor processes)."""
    return [
        e for e in descendants(driver, processes())
        if e.command.startswith("ray::") and any(m in e.command for m in TRIAL_PROCESS_MARKERS)
    ]  # fmt: skip


def private_server(driver: int) -> ProcessEntry | None:
    """The driver's private ``mlflow server`` process (the parent of its workers)."""
    for entry in processes():
        if entry.parent == driver and "mlflow server" in entry.command:
            return entry
    return None


def disturb(
    driver: subprocess.Popen[str],
    kill_every_s: float,
    server_kill_at_s: float,
    seed: int = 0,
    max_trial_kills: int | None = None,
) -> Disturbance:
    """Until the driver exits: SIGKILL one random trial process every ``kill_every_s`` (at
    most ``max_trial_kills``) and the private server once, ``server_kill_at_s``; both
    counted from the first trial process seen, so that a fast machine is disturbed as
    much as a slow one."""
    chooser = random.Random(seed)
    done = Disturbance()
    start: float | None = None
    next_kill = kill_every_s
    while driver.poll() is None:
        time.sleep(1.0)
        if start is None:
            if trial_processes(driver.pid):
                start = time.monotonic()
            continue
        elapsed = time.monotonic() - start
        if done.server_kills == 0 and elapsed >= server_kill_at_s:
            server = private_server(driver.pid)
            if server is not None:
                os.kill(server.pid, signal.SIGKILL)
                done.server_kills += 1
                print(f"soak: {elapsed:.0f} s: killed the mlflow server", file=sys.stderr)
        if elapsed >= next_kill and done.trials_killed != max_trial_kills:
            trials = trial_processes(driver.pid)
            if trials:
                victim = chooser.choice(trials)
                try:
                    os.kill(victim.pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue  # it ended on its own meanwhile: pick again next second
                done.trials_killed += 1
                done.kill_times_s.append(round(elapsed, 1))
                print(f"soak: {elapsed:.0f} s: killed trial process {victim.pid}", file=sys.stderr)
                next_kill = elapsed + kill_every_s
    return done


def check_runs(store: str, epochs: int) -> dict[str, object]:
    """Child runs per (configuration, fold), their status and metric history, and the
    champion, from the store."""
    tracking.configure(store)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("sn-platform")
    if experiment is None:
        raise SystemExit(f"soak: no sn-platform experiment in {store}")
    runs = client.search_runs([experiment.experiment_id], max_results=10_000)
    trials = [r for r in runs if r.data.tags.get("sn.config_id") and "sn.fold" in r.data.tags]
    trials = [r for r in trials if r.data.tags["sn.fold"] != "all"]
    keys = Counter((r.data.tags["sn.config_id"], r.data.tags["sn.fold"]) for r in trials)
    expected = {(c, str(f)) for c, _ in keys for f in range(FOLDS)}
    incomplete, duplicate_steps = [], 0
    for run in trials:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        duplicate_steps += len(steps) - len(set(steps))
        if sorted(set(steps)) != list(range(1, epochs + 1)):
            incomplete.append(run.info.run_name)
    champion = client.get_model_version_by_alias("sn-vnet", "champion")
    return {
        "configurations": len({c for c, _ in keys}),
        "child_runs": len(trials),
        "duplicate_child_runs": sum(n - 1 for n in keys.values()),
        "missing_child_runs": len(expected - set(keys)),
        "unfinished_child_runs": sum(r.info.status != "FINISHED" for r in trials),
        "incomplete_metric_histories": sorted(incomplete),
        "duplicate_metric_steps": duplicate_steps,
        "champion_version": str(champion.version),
    }


def run_soak(
    data: Path,
    work: Path,
    configs: int,
    epochs: int,
    kill_every_s: float | None,
    max_trial_kills: int | None = None,
) -> dict[str, object]:
    """One sweep in ``work``, disturbed when ``kill_every_s`` is given; its figures."""
    work.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-c", "from sn_platform.cli import sweep; sweep()"]
    overrides = sweep_overrides(data, work, configs, epochs)
    start = time.monotonic()
    with (work / "sweep.log").open("w") as log:
        driver = subprocess.Popen(
            [*command, *overrides], cwd=work, stdout=log, stderr=subprocess.STDOUT, text=True
        )
        done = Disturbance()
        if kill_every_s is not None:
            done = disturb(driver, kill_every_s, 2.5 * kill_every_s, 0, max_trial_kills)
        driver.wait()
    wall = time.monotonic() - start
    log_text = (work / "sweep.log").read_text()
    figures: dict[str, object] = {
        "disturbed": kill_every_s is not None,
        "exit_code": driver.returncode,
        "wall_s": round(wall, 1),
        **asdict(done),
        "server_restarts": log_text.count("starting it again"),
    }
    if driver.returncode == 0:
        figures |= check_runs(f"sqlite:///{work}/mlflow.db", epochs)
    else:
        figures["log_tail"] = log_text[-2000:]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="phantom cohort (made if absent)")
    parser.add_argument("--work", type=Path, required=True, help="new folder for the sweeps")
    parser.add_argument("--configs", type=int, default=4, help="configurations (x 2 folds)")
    parser.add_argument("--epochs", type=int, default=40, help="epochs of every trial")
    parser.add_argument("--kill-every", type=float, default=120.0, help="seconds between kills")
    parser.add_argument("--undisturbed", action="store_true", help="also run the baseline")
    parser.add_argument("--out", type=Path, help="write the JSON here too")
    arguments = parser.parse_args()
    # Beside this script when it runs; tests import the module from the repository's root.
    from cohort import small_phantom

    data = small_phantom(arguments.data.resolve(), subjects=8, seed=5, sites=("A", "B"))
    work = arguments.work.resolve()
    report: dict[str, object] = {
        "benchmark": "sweep_soak",
        "cpus": os.cpu_count(),
        "soak": run_soak(data, work / "soak", arguments.configs, arguments.epochs,
                         arguments.kill_every),
    }  # fmt: skip
    if arguments.undisturbed:
        report["undisturbed"] = run_soak(
            data, work / "undisturbed", arguments.configs, arguments.epochs, None
        )
    text = json.dumps(report, indent=2)
    print(text)
    if arguments.out:
        arguments.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
