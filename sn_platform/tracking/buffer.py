"""A run's tracking journal: parameters, metrics, tags, artifacts and the model go first to a
folder of the run's own, and a background thread delivers them to the tracking store when
it answers. An outage never blocks or kills the run; ``sn-track sync FOLDER`` replays what
is left.

The folder holds ``journal.jsonl`` (one record per call, appended), ``state.json`` (the
store, the run id once created, how many records the store has) and ``files/`` (copies of
artifacts and the model weights). Replay is idempotent: a metric keeps its original step
and timestamp (the store keeps one copy of an identical metric), parameters already logged
are skipped, tags and artifacts overwrite. A record delivered twice (a crash between sending
it and noting it) is harmless.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from sn_platform.data.io import write_text
from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.errors import one_line
from sn_platform.inference.atlas import AtlasLocaliser
from sn_platform.inference.predictor import InferenceSettings, Localiser, Segmenter
from sn_platform.inference.segmenter_files import (
    load_segmenter_files,
    save_weights,
    segmenter_bundle,
)
from sn_platform.tracking.datasets import log_dataset
from sn_platform.tracking.models import log_segmenter, register
from sn_platform.tracking.store import RunLogger, configure

JOURNAL = "journal.jsonl"
STATE = "state.json"
FILES = "files"
RETRY_S = 15.0
# A dead store must cost a delivery attempt seconds, not minutes of urllib3 retries.
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}

T = TypeVar("T")


class Journal:
    """The journal folder of one run (see the module docstring)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._lock = threading.Lock()

    @classmethod
    def create(cls, folder: Path, uri: str) -> Journal:
        """A new, empty journal for the store ``uri``."""
        journal = cls(folder)
        journal.folder.mkdir(parents=True, exist_ok=True)
        journal.save_state({"uri": uri, "sent": 0, "run_id": None, "model_uri": None})
        return journal

    def exists(self) -> bool:
        return (self.folder / STATE).exists()

    def state(self) -> dict[str, Any]:
        return dict(json.loads((self.folder / STATE).read_text()))

    def save_state(self, state: Mapping[str, Any]) -> None:
        with self._lock:
            write_text(self.folder / STATE, json.dumps(dict(state)))

    def update_state(self, **changes: Any) -> None:
        self.save_state({**self.state(), **changes})

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record durably (a crash keeps every record appended before it)."""
        with (self.folder / JOURNAL).open("a") as handle:
            handle.write(json.dumps(dict(record)) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def records(self) -> list[dict[str, Any]]:
        """Every complete record, in order (a torn last line, from a crash, is not one)."""
        path = self.folder / JOURNAL
        if not path.exists():
            return []
        lines = path.read_text().split("\n")[:-1]
        return [json.loads(line) for line in lines]

    def pending(self) -> int:
        """How many records the store does not have yet."""
        return len(self.records()) - int(self.state()["sent"])

    def new_file(self, name: str) -> Path:
        """A fresh path ``files/<n>/name`` in the folder, for a copy the journal keeps."""
        with self._lock:
            files = self.folder / FILES
            count = len(list(files.iterdir())) if files.exists() else 0
            target = files / f"{count:05d}" / name
            target.parent.mkdir(parents=True)
        return target

    def relative(self, path: Path) -> str:
        return str(Path(path).relative_to(self.folder))


def _apply(record: Mapping[str, Any], journal: Journal, state: dict[str, Any]) -> None:
    """Deliver one record to the configured store; updates ``state`` (run id, model URI)."""
    op = record["op"]
    if op == "start":
        if state["run_id"] is None:
            run = RunLogger.start(
                record["experiment"], record["run_name"], record["tags"],
                record["artifact_location"], record["parent_run_id"], key=record["key"],
            )  # fmt: skip
            state["run_id"] = run.run_id
            journal.update_state(run_id=run.run_id)
        return
    run = RunLogger(state["run_id"])
    if op == "resume":
        RunLogger.reopen(run.run_id)
    elif op == "params":
        run.log_params(record["params"])
    elif op == "metrics":
        run.log_metrics(record["metrics"], record["step"], record["timestamp"])
    elif op == "tags":
        run.set_tags(record["tags"])
    elif op == "dataset":
        log_dataset(run.run_id, Path(record["root"]), record["digest"], record["subjects"])
    elif op == "artifact":
        run.log_artifact(journal.folder / record["file"], record["artifact_path"])
    elif op == "model":
        cpu = torch.device("cpu")
        bundle = segmenter_bundle(
            record["model"], PreprocessingSpec.from_dict(record["preprocessing"]),
            InferenceSettings.from_dict(record["inference"]),
        )  # fmt: skip
        segmenter = load_segmenter_files(bundle, journal.folder / record["weights"], cpu)
        localiser: Localiser | None = None
        first = record.get("localiser")
        if first is not None and "atlas" in first:
            localiser = AtlasLocaliser.from_dict(first["atlas"])
        elif first is not None:
            weights = journal.folder / first["weights"]
            localiser = load_segmenter_files(first["bundle"], weights, cpu)
        model_uri = log_segmenter(
            run.run_id, segmenter.model, record["model"], segmenter.spec, segmenter.settings,
            localiser,
        )  # fmt: skip
        registration = record["register"]
        if registration is not None:
            tags = {"run_id": run.run_id, **registration["tags"]}
            register(model_uri, registration["name"], registration["alias"], tags,
                     registration["description"])  # fmt: skip
        state["model_uri"] = model_uri
        journal.update_state(model_uri=model_uri)
    elif op == "finish":
        run.finish(record["status"], record["end_time"])
    else:
        raise ValueError(f"{journal.folder / JOURNAL}: unknown record {op!r}")


def deliver(journal: Journal) -> int:
    """Send the journal's pending records to its store, in order; how many were sent.

    Raises whatever the store raises at the first record it does not take.
    """
    state = journal.state()
    configure(state["uri"])
    records = journal.records()
    start = int(state["sent"])
    for index in range(start, len(records)):
        _apply(records[index], journal, state)
        journal.update_state(sent=index + 1)
    return len(records) - start


def sync(folder: Path, uri: str | None = None) -> dict[str, Any]:
    """Replay a run's journal folder to its store (or to ``uri``); the final state.

    Raises
    ------
    FileNotFoundError
        when ``folder`` holds no journal.
    """
    journal = Journal(folder)
    if not journal.exists():
        raise FileNotFoundError(f"{folder}: no tracking journal ({STATE}) here")
    if uri is not None:
        journal.update_state(uri=uri)
    deliver(journal)
    return journal.state()


def with_retries(call: Callable[[], T], attempts: int = 5, wait_s: float = 5.0) -> T:
    """``call()``, tried ``attempts`` times ``wait_s`` apart; the last error is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception:
            if attempt == attempts:
                raise
            time.sleep(wait_s)
    raise AssertionError("unreachable")


def _warn(text: str) -> None:
    print(f"sn-track: {text}", file=sys.stderr, flush=True)


class BufferedRun:
    """A run logger that never blocks: every call is a journal record, delivered by a
    background thread; an unreachable store costs one warning line and a retry every
    ``retry_s`` seconds.

    Parameters
    ----------
    journal : the run's journal (``BufferedRun.open`` creates or continues one)
    retry_s : seconds between delivery attempts while the store does not answer
    """

    def __init__(self, journal: Journal, retry_s: float = RETRY_S):
        for name, value in HTTP_LIMITS.items():
            os.environ.setdefault(name, value)
        self.journal = journal
        self.retry_s = retry_s
        self.error: str | None = None
        self._unwritable = False
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._deliver_loop, name="sn-track", daemon=True)
        self._thread.start()

    @classmethod
    def open(
        cls,
        folder: Path,
        uri: str,
        start: Mapping[str, Any],
        resume: bool,
        retry_s: float = RETRY_S,
    ) -> BufferedRun:
        """Continue the journal in ``folder`` (``resume`` and one is there), else start a
        new one whose first record creates the run (``start``: experiment, run_name, tags,
        artifact_location, parent_run_id, key)."""
        journal = Journal(folder)
        if resume and journal.exists():
            journal.update_state(uri=uri)  # the store as configured now (a new server port)
            journal.append({"op": "resume"})
            return cls(journal, retry_s)
        if journal.exists():
            _set_aside(journal)
        journal = Journal.create(folder, uri)
        journal.append({"op": "start", **start})
        return cls(journal, retry_s)

    @property
    def run_id(self) -> str | None:
        """The run's id once the store created it."""
        return self.journal.state()["run_id"]

    @property
    def model_uri(self) -> str | None:
        """The logged model's URI once the store has it."""
        return self.journal.state()["model_uri"]

    @property
    def folder(self) -> Path:
        return self.journal.folder

    def _record(self, record: Mapping[str, Any]) -> None:
        try:
            self.journal.append(record)
        except OSError as error:  # tracking never kills the work, not even on a full disk
            if not self._unwritable:
                _warn(f"cannot write the tracking journal in {self.folder}: {one_line(error)}")
            self._unwritable = True
            return
        if self.error is None:
            self._wake.set()

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._record({"op": "params", "params": {k: str(v) for k, v in params.items()}})

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Metrics of one step (epoch), stamped now."""
        self._record({
            "op": "metrics", "metrics": {k: float(v) for k, v in metrics.items()},
            "step": int(step), "timestamp": int(1000 * time.time()),
        })  # fmt: skip

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._record({"op": "tags", "tags": {k: str(v) for k, v in tags.items()}})

    def log_dataset(self, root: Path, digest: str, subjects: Mapping[str, int]) -> None:
        """The dataset at ``root`` as the run's input (``tracking.datasets.log_dataset``)."""
        self._record({"op": "dataset", "root": str(Path(root).resolve()), "digest": digest,
                      "subjects": {k: int(v) for k, v in subjects.items()}})  # fmt: skip

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """A copy of file ``path`` (as it is now) under ``artifact_path``."""
        copy = self.journal.new_file(Path(path).name)
        shutil.copyfile(path, copy)
        self._record(
            {"op": "artifact", "file": self.journal.relative(copy), "artifact_path": artifact_path}
        )

    def log_text(self, text: str, artifact_file: str) -> None:
        """``text`` as the artifact ``artifact_file`` (``config/config.yaml``)."""
        copy = self.journal.new_file(Path(artifact_file).name)
        write_text(copy, text)
        parent = str(Path(artifact_file).parent)
        self._record({"op": "artifact", "file": self.journal.relative(copy),
                      "artifact_path": None if parent == "." else parent})  # fmt: skip

    def log_model(
        self,
        model: nn.Module,
        model_config: Mapping[str, Any],
        spec: PreprocessingSpec,
        settings: InferenceSettings,
        registration: Mapping[str, Any] | None = None,
        localiser: Localiser | None = None,
    ) -> None:
        """The model as a pyfunc (``tracking.models.log_segmenter``) with its ``localiser``
        (a cascade's first stage) inside, registered when ``registration`` (name, alias,
        tags, description) is given."""
        weights = save_weights(model, self.journal.new_file("weights.pt"))
        first: dict[str, Any] | None = None
        if isinstance(localiser, AtlasLocaliser):
            first = {"atlas": localiser.to_dict()}
        elif isinstance(localiser, Segmenter):
            first = {
                "weights": self.journal.relative(
                    save_weights(localiser.model, self.journal.new_file("localiser.pt"))
                ),
                "bundle": segmenter_bundle(localiser.config, localiser.spec, localiser.settings),
            }
        self._record({
            "op": "model", "weights": self.journal.relative(weights),
            "model": dict(model_config), "preprocessing": spec.to_dict(),
            "inference": settings.to_dict(), "localiser": first,
            "register": None if registration is None else dict(registration),
        })  # fmt: skip

    def finish(self, status: str = "FINISHED") -> None:
        self._record({"op": "finish", "status": status, "end_time": int(1000 * time.time())})

    def close(self, patience_s: float = 0.0) -> bool:
        """Deliver what is pending, trying for up to ``patience_s`` seconds; True when the
        store has everything (else ``sn-track sync`` of ``folder`` delivers it later)."""
        deadline = time.monotonic() + patience_s
        self._closing = True
        self._wake.set()
        self._thread.join()
        while self.journal.pending() and time.monotonic() < deadline:
            time.sleep(min(self.retry_s, max(0.0, deadline - time.monotonic())))
            self._attempt()
        return self.journal.pending() == 0

    def _attempt(self) -> None:
        try:
            delivered = deliver(self.journal)
        except Exception as error:  # whatever the store or the network raises
            if self.error is None:
                state = self.journal.state()
                _warn(
                    f"tracking store {state['uri']} does not answer ({one_line(error, 160)}); "
                    f"the run goes on, buffered in {self.journal.folder}"
                )
            self.error = one_line(error)
            return
        if self.error is not None:
            _warn(f"tracking store answers again: {delivered} buffered records delivered")
        self.error = None

    def _deliver_loop(self) -> None:
        while True:
            self._wake.wait(timeout=None if self.error is None else self.retry_s)
            self._wake.clear()
            closing = self._closing
            self._attempt()
            if closing:
                return


def _set_aside(journal: Journal) -> None:
    """A fresh run in a folder whose old journal the store never got all of: keep it aside."""
    if journal.pending() == 0:
        shutil.rmtree(journal.folder)
        return
    kept = journal.folder.with_name(f"{journal.folder.name}-{int(time.time())}")
    journal.folder.rename(kept)
    _warn(f"an earlier run's undelivered history moved to {kept}; sn-track sync {kept} uploads it")
