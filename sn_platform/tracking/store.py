"""The MLflow store: where it is, its experiments, and ``RunLogger``, which writes the
parameters, metrics, tags and artifacts of one of its runs."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, RunTag

from sn_platform.tracking.views import compared_view_tags

MAX_PARAM_LENGTH = 6000
BATCH_SIZE = 100
PARENT_TAG = "mlflow.parentRunId"
RUN_KEY_TAG = "sn.run_key"
# MLflow 3's UI opens an experiment on the view of its kind (GenAI traces by default).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


# MLflow's own chatter, off unless the environment says otherwise: the platform prints its
# progress and the page to open; MLflow's warnings stay.
QUIET_ENVIRONMENT = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
# Said once in docs/security.md ("A model is code"), not at every log_model.
CLOUDPICKLE_NOTICE = "Passing a Python object as `python_model`"


def _not_the_cloudpickle_notice(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(CLOUDPICKLE_NOTICE)


def quiet_mlflow() -> None:
    """MLflow without its INFO logs, progress bars, printed URLs and pickling notice."""
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    pyfunc = logging.getLogger("mlflow.pyfunc")
    if _not_the_cloudpickle_notice not in pyfunc.filters:
        pyfunc.addFilter(_not_the_cloudpickle_notice)


def configure(uri: str) -> None:
    """Point MLflow's tracking and registry at ``uri`` (sqlite file, server URL ...), quietly
    (``quiet_mlflow``)."""
    quiet_mlflow()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


def absolute_uri(uri: str) -> str:
    """``sqlite:///relative.db`` made absolute (workers run in other folders); others as given."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{Path(uri.removeprefix('sqlite:///')).resolve()}"
    return uri


def experiment_id(name: str, artifact_location: str | None = None) -> str:
    """Id of experiment ``name``, created (with artifacts under ``artifact_location``) if new,
    tagged as a model-training experiment so the UI opens on its runs, with the view of
    the compared metrics (``tracking.views``) saved in it."""
    client = mlflow.MlflowClient()
    tags = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND} | compared_view_tags()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        for key, value in tags.items():
            if key not in experiment.tags:
                client.set_experiment_tag(experiment.experiment_id, key, value)
        return str(experiment.experiment_id)
    location = None if artifact_location is None else Path(artifact_location).resolve().as_uri()
    try:
        return str(client.create_experiment(name, artifact_location=location, tags=tags))
    except mlflow.exceptions.MlflowException:
        # Another process created it between the lookup and the creation.
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping -> ``{"model.depth": "4", ...}`` (lists as their text)."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = str(value)
    return flat


def source_version() -> str:
    """Git commit of the installed package's checkout, or ``unknown``."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip()


@dataclass
class RunLogger:
    """Logs to one MLflow run by id (no global active run, so threads and trials are safe)."""

    run_id: str

    @property
    def client(self) -> mlflow.MlflowClient:
        return mlflow.MlflowClient()

    @classmethod
    def start(
        cls,
        experiment: str,
        run_name: str,
        tags: Mapping[str, str] | None = None,
        artifact_location: str | None = None,
        parent_run_id: str | None = None,
        key: str | None = None,
    ) -> RunLogger:
        """Create a run (nested under ``parent_run_id`` when given).

        With ``key``, the run tagged ``sn.run_key = key`` under the same parent is reopened
        if it exists: a restarted sweep trial or refit continues its run, never adds one.
        """
        experiment_key = experiment_id(experiment, artifact_location)
        all_tags = {"mlflow.source.git.commit": source_version(), **(tags or {})}
        query = []
        if parent_run_id is not None:
            all_tags[PARENT_TAG] = parent_run_id
            query.append(f"tags.`{PARENT_TAG}` = '{parent_run_id}'")
        if key is not None:
            all_tags[RUN_KEY_TAG] = key
            query.append(f"tags.`{RUN_KEY_TAG}` = '{key}'")
            client = mlflow.MlflowClient()
            found = client.search_runs([experiment_key], " and ".join(query), max_results=1)
            if found:
                return cls.reopen(found[0].info.run_id)
        run = mlflow.MlflowClient().create_run(experiment_key, tags=all_tags, run_name=run_name)
        return cls(run.info.run_id)

    @classmethod
    def reopen(cls, run_id: str) -> RunLogger:
        """Continue an existing run (a resumed training or sweep)."""
        client = mlflow.MlflowClient()
        client.get_run(run_id)  # raises if it does not exist
        client.update_run(run_id, status="RUNNING")
        return cls(run_id)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Parameters (values cut to MLflow's length limit), in batches."""
        items = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()]
        logged = self.client.get_run(self.run_id).data.params
        items = [p for p in items if p.key not in logged]  # a resumed run keeps its params
        for start in range(0, len(items), BATCH_SIZE):
            self.client.log_batch(self.run_id, params=items[start : start + BATCH_SIZE])

    def log_metrics(
        self, metrics: Mapping[str, float], step: int, timestamp_ms: int | None = None
    ) -> None:
        """Metrics of one step (epoch), stamped ``timestamp_ms`` (ms since the epoch; now)."""
        stamp = int(1000 * time.time()) if timestamp_ms is None else int(timestamp_ms)
        items = [Metric(k, float(v), stamp, step) for k, v in metrics.items()]
        for start in range(0, len(items), BATCH_SIZE):
            self.client.log_batch(self.run_id, metrics=items[start : start + BATCH_SIZE])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Tags (string values)."""
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Upload a file (or a folder's files)."""
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        """Upload ``text`` as ``artifact_file``."""
        self.client.log_text(self.run_id, text, artifact_file)

    def finish(self, status: str = "FINISHED", end_time_ms: int | None = None) -> None:
        """Mark the run FINISHED, FAILED or KILLED (at ``end_time_ms``; now)."""
        self.client.set_terminated(self.run_id, status=status, end_time=end_time_ms)
