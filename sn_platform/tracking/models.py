"""The logged model: the pyfunc flavour, its logging, the registry and loading by URI."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import torch
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import Schema, TensorSpec
from torch import nn

import sn_platform
from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.devices import select_device
from sn_platform.inference.atlas import AtlasLocaliser
from sn_platform.inference.export import export_network
from sn_platform.inference.model_uris import check_model_uri
from sn_platform.inference.predictor import InferenceSettings, Localiser, Segmenter, predict_array
from sn_platform.inference.segmenter_files import (
    load_segmenter_files,
    save_weights,
    segmenter_bundle,
)
from sn_platform.tracking.store import configure

# What ``sn_platform.tracking.models`` imports when a model loads (its code travels along).
REQUIREMENTS = ("mlflow", "torch", "torchio", "nibabel", "numpy", "scipy", "SimpleITK")


class SegmenterModel(PythonModel):
    """The pyfunc flavour: a V-Net with its preprocessing spec and inference settings, and
    the localiser that centres its box when it is a cascade's second stage.

    ``predict`` takes preprocessed volumes (N, C, X, Y, Z) float32 and returns the label
    probabilities (N, K, X, Y, Z), K = ``labels`` (SN, RN, CC); ``segmenter`` runs the
    whole pipeline on BIDS files (localiser, box, prediction; the slab is placed below the
    predicted RN).
    """

    segmenter: Segmenter
    bundle: dict[str, Any]

    def load_context(self, context: Any) -> None:
        artifacts = context.artifacts
        device = select_device("auto")
        self.bundle = json.loads(Path(artifacts["bundle"]).read_text())
        self.segmenter = load_segmenter_files(self.bundle, Path(artifacts["weights"]), device)
        if "localiser_bundle" in artifacts:
            bundle = json.loads(Path(artifacts["localiser_bundle"]).read_text())
            weights = Path(artifacts["localiser_weights"])
            self.segmenter.localiser = load_segmenter_files(bundle, weights, device)
        if "localiser_atlas" in artifacts:
            atlas = json.loads(Path(artifacts["localiser_atlas"]).read_text())
            self.segmenter.localiser = AtlasLocaliser.from_dict(atlas)

    def predict(self, context: Any, model_input: np.ndarray, params: Any = None) -> np.ndarray:
        # ``np.ndarray`` is a hint MLflow infers no schema from: the logged signature rules.
        volumes = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        segmenter = self.segmenter
        probabilities = [
            predict_array(segmenter.model, volume, segmenter.settings, segmenter.device)
            for volume in volumes
        ]
        return torch.stack(probabilities).numpy()


def package_copy(folder: Path) -> Path:
    """A copy of the ``sn_platform`` package (no caches) in ``folder``: the code that travels
    with a logged model, so it loads where the package is not installed."""
    source = Path(sn_platform.__file__).parent
    target = Path(folder) / "sn_platform"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def pinned_requirements() -> list[str]:
    """The installed versions of what loading the model imports (``REQUIREMENTS``)."""
    return [f"{name}=={metadata.version(name)}" for name in REQUIREMENTS]


def _segmenter_artifacts(
    folder: Path,
    prefix: str,
    model: nn.Module,
    bundle: Mapping[str, Any],
) -> dict[str, Path]:
    """Weights, bundle and ``torch.export`` program of one network, named ``prefix*``."""
    weights = save_weights(model, folder / f"{prefix}weights.pt")
    bundle_path = folder / f"{prefix}bundle.json"
    bundle_path.write_text(json.dumps(bundle, indent=2))
    network = folder / f"{prefix}network.pt2"
    channels = len(bundle["channels"])
    export_network(model, channels, bundle["inference"]["patch_size"], network)
    return {
        f"{prefix}weights": weights,
        f"{prefix}bundle": bundle_path,
        f"{prefix}network": network,
    }


def log_segmenter(
    run_id: str,
    model: nn.Module,
    model_config: Mapping[str, Any],
    spec: PreprocessingSpec,
    settings: InferenceSettings,
    localiser: Localiser | None = None,
) -> str:
    """Log the model as a pyfunc named ``model`` in ``run_id``; returns its model URI.

    ``model_config`` holds the network's ``_target_`` and constructor arguments; a
    ``localiser`` (the cascade's first stage) travels inside the same model, with its own
    ``localiser_*`` artifacts (an ``AtlasLocaliser``: its settings, ``localiser_atlas``).
    """
    channels = len(spec.channels)
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, channels, -1, -1, -1))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, len(settings.labels), -1, -1, -1))]),
    )
    example = np.zeros((1, channels, *settings.patch_size), dtype=np.float32)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        bundle = segmenter_bundle(model_config, spec, settings)
        artifacts = _segmenter_artifacts(folder, "", model, bundle)
        if isinstance(localiser, AtlasLocaliser):
            atlas = folder / "localiser_atlas.json"
            atlas.write_text(json.dumps(localiser.to_dict(), indent=2))
            artifacts["localiser_atlas"] = atlas
        elif isinstance(localiser, Segmenter):
            first = segmenter_bundle(localiser.config, localiser.spec, localiser.settings)
            artifacts |= _segmenter_artifacts(folder, "localiser_", localiser.model, first)
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=SegmenterModel(),
                artifacts={k: str(v) for k, v in artifacts.items()},
                code_paths=[str(package_copy(folder))],
                signature=signature,
                input_example=example,
                pip_requirements=pinned_requirements(),
            )
    return str(info.model_uri)


def register(
    model_uri: str,
    name: str,
    alias: str,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    once_per: str | None = None,
) -> str:
    """Register ``model_uri`` as a new version of ``name`` and point ``alias`` at it.

    With ``once_per`` (a key of ``tags``), a version of ``name`` already carrying that tag's
    value is reused instead: a registration repeated after a lost process (the version
    created, its number never recorded) makes no second version.
    """
    tags = {k: str(v) for k, v in (tags or {}).items()}
    client = mlflow.MlflowClient()
    existing: list[ModelVersion] = []
    if once_per is not None:
        query = f"name = '{name}' and tags.{once_per} = '{tags[once_per]}'"
        existing = client.search_model_versions(query)
    version = (
        min(existing, key=lambda v: int(v.version))
        if existing
        else mlflow.register_model(model_uri, name, tags=tags)
    )
    if description:
        client.update_model_version(name, version.version, description=description)
    client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def load_segmenters(model_uris: Sequence[str], tracking_uri: str) -> list[Segmenter]:
    """The segmenters of several model URIs from the store at ``tracking_uri``; a partial of
    it pickles, so a Ray actor can load its own replicas."""
    configure(tracking_uri)
    return [load_segmenter(uri) for uri in model_uris]


def load_segmenter_at(model_uri: str, tracking_uri: str) -> Segmenter:
    """The segmenter of one model URI (a store's or a local folder; remote URIs are refused,
    ``check_model_uri``) from the store at ``tracking_uri``: how a training run loads its
    localiser."""
    check_model_uri(model_uri)
    return load_segmenters([model_uri], tracking_uri)[0]


def load_segmenter(model_uri: str) -> Segmenter:
    """The ``Segmenter`` inside a logged or registered pyfunc model."""
    model = mlflow.pyfunc.load_model(model_uri)
    python_model = model.unwrap_python_model()
    if not isinstance(python_model, SegmenterModel):
        raise ValueError(f"{model_uri}: not an sn-platform segmentation model")
    return python_model.segmenter
