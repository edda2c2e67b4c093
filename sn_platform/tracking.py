"""MLflow at the platform's edge: runs, parameters, metrics, artifacts, the pyfunc model
and the registry. The only module that imports MLflow.

A local store is ``sqlite:///mlruns/mlflow.db`` with artifacts under ``mlruns/``; a team
or a cluster uses ``mlflow server`` (``tracking=server``, ``jobs/mlflow-server.sh``).
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import torch
from mlflow.entities import Metric, Param, RunTag
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import Schema, TensorSpec
from torch import nn

from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.inference import InferenceSettings, Segmenter, predict_array
from sn_platform.models.ensemble import build_module
from sn_platform.runtime import select_device

MAX_PARAM_LENGTH = 6000
BATCH_SIZE = 100
PARENT_TAG = "mlflow.parentRunId"
RUN_KEY_TAG = "sn.run_key"


def configure(uri: str) -> None:
    """Point MLflow's tracking and registry at ``uri`` (sqlite file, server URL ...)."""
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
    """Id of experiment ``name``, created (with artifacts under ``artifact_location``) if new."""
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    location = None if artifact_location is None else Path(artifact_location).resolve().as_uri()
    try:
        return str(client.create_experiment(name, artifact_location=location))
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

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Metrics of one step (epoch)."""
        now = int(1000 * time.time())
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
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

    def finish(self, status: str = "FINISHED") -> None:
        """Mark the run FINISHED, FAILED or KILLED."""
        self.client.set_terminated(self.run_id, status=status)


class SegmenterModel(PythonModel):
    """The pyfunc flavour: a V-Net with its preprocessing spec and inference settings.

    ``predict`` takes preprocessed volumes (N, C, X, Y, Z) float32 and returns SN
    probabilities (N, 1, X, Y, Z); ``segmenter`` runs the whole pipeline on BIDS files.
    """

    segmenter: Segmenter
    bundle: dict[str, Any]

    def load_context(self, context: Any) -> None:
        self.bundle = json.loads(Path(context.artifacts["bundle"]).read_text())
        model = build_module(self.bundle["model"])
        model.load_state_dict(torch.load(context.artifacts["weights"], map_location="cpu"))
        device = select_device("auto")
        self.segmenter = Segmenter(
            model.to(device).eval(),
            PreprocessingSpec.from_dict(self.bundle["preprocessing"]),
            InferenceSettings(**self.bundle["inference"]),
            device,
        )

    def predict(self, context: Any, model_input: np.ndarray, params: Any = None) -> np.ndarray:
        # ``np.ndarray`` is a hint MLflow infers no schema from: the logged signature rules.
        volumes = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        segmenter = self.segmenter
        probabilities = [
            predict_array(segmenter.model, volume, segmenter.settings, segmenter.device)
            for volume in volumes
        ]
        return torch.stack(probabilities).numpy()


def log_segmenter(
    run_id: str,
    model: nn.Module,
    model_config: Mapping[str, Any],
    spec: PreprocessingSpec,
    settings: InferenceSettings,
    label: str = "SN",
) -> str:
    """Log the model as a pyfunc named ``model`` in ``run_id``; returns its model URI.

    ``model_config`` holds the network's ``_target_`` and constructor arguments.
    """
    channels = len(spec.echoes)
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, channels, -1, -1, -1))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 1, -1, -1, -1))]),
    )
    bundle = {
        "model": dict(model_config),
        "preprocessing": spec.to_dict(),
        "inference": settings.to_dict(),
        "channels": [f"echo-{e} magnitude" for e in spec.echoes],
        "label": label,
    }
    example = np.zeros((1, channels, *settings.patch_size), dtype=np.float32)
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "weights.pt"
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, weights)
        bundle_path = Path(folder) / "bundle.json"
        bundle_path.write_text(json.dumps(bundle, indent=2))
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=SegmenterModel(),
                artifacts={"weights": str(weights), "bundle": str(bundle_path)},
                signature=signature,
                input_example=example,
                pip_requirements=["torch", "torchio", "nibabel", "numpy", "mlflow"],
            )
    return str(info.model_uri)


def register(
    model_uri: str,
    name: str,
    alias: str,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
) -> str:
    """Register ``model_uri`` as a new version of ``name`` and point ``alias`` at it."""
    version = mlflow.register_model(
        model_uri, name, tags={k: str(v) for k, v in (tags or {}).items()}
    )
    client = mlflow.MlflowClient()
    if description:
        client.update_model_version(name, version.version, description=description)
    client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def load_segmenter(model_uri: str) -> Segmenter:
    """The ``Segmenter`` inside a logged or registered pyfunc model."""
    model = mlflow.pyfunc.load_model(model_uri)
    python_model = model.unwrap_python_model()
    if not isinstance(python_model, SegmenterModel):
        raise ValueError(f"{model_uri}: not an sn-platform segmentation model")
    return python_model.segmenter


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def local_server(backend_uri: str, artifact_root: str, timeout_s: float = 120.0) -> Iterator[str]:
    """Run ``mlflow server`` on 127.0.0.1 over ``backend_uri`` while the block runs.

    SQLite takes one writer at a time; concurrent sweep trials log through this one
    server process instead of opening the database themselves. Yields the server URL.
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", backend_uri, "--default-artifact-root",
        Path(artifact_root).resolve().as_uri(), "--workers", "1",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                error = (process.stderr.read() if process.stderr else b"").decode()[-500:]
                raise RuntimeError(f"mlflow server exited ({process.returncode}): {error}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"mlflow server at {url} not up in {timeout_s} s") from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
