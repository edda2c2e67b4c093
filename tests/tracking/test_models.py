"""The logged model outside this project: it loads and predicts where ``sn_platform`` is
not importable (its code travels with it), ``mlflow models predict`` serves its input
example, and the exported ``torch.export`` network gives the same probabilities."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

import sn_platform
from sn_platform import tracking
from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.inference.predictor import InferenceSettings, Segmenter
from sn_platform.models.factory import build_module

pytestmark = pytest.mark.slow  # real subprocesses: a hidden package, the mlflow CLI
MODEL = "models:/sn-vnet-tiny@champion"
PATCH = (16, 16, 3)
NETWORK = {
    "_target_": "sn_platform.models.vnet.VNet", "in_channels": 2, "out_channels": 1,
    "depth": 3, "base_filters": 4, "convs_per_stage": [1, 1, 1], "patch_size": list(PATCH),
}  # fmt: skip

# Imported first by every Python started with ``PYTHONPATH=<its folder>``: ``sn_platform`` is
# importable only from a logged model's ``code/`` folder, wherever else it is installed.
HIDE_PACKAGE = """
import importlib.machinery, sys

class OnlyTheModelsCopy:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] != "sn_platform":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or "/code/sn_platform" not in str(spec.origin):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return spec

sys.meta_path.insert(0, OnlyTheModelsCopy)
"""

LOAD_AND_PREDICT = """
import importlib.util, json, sys
import mlflow, numpy as np, torch
try:
    importlib.util.find_spec("sn_platform")
    sys.exit("sn_platform is importable: the test would prove nothing")
except ModuleNotFoundError:
    pass
mlflow.set_tracking_uri(sys.argv[1]); mlflow.set_registry_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
example = model.input_example
probability = model.predict(example)
folder = mlflow.artifacts.download_artifacts(sys.argv[2] + "/artifacts/network.pt2")
network = torch.export.load(folder).module()
exported = network(torch.as_tensor(example)).detach().numpy()
print(json.dumps({
    "shape": list(probability.shape), "probability": probability.ravel().tolist(),
    "exported": exported.ravel().tolist(), "origin": sys.modules["sn_platform"].__file__,
}))
"""


def _tiny_localiser() -> Segmenter:
    """An untrained tiny V-Net on 2 mm voxels over the whole field of view."""
    torch.manual_seed(1)
    spec = PreprocessingSpec(
        channels=("echo-1", "echo-2"), spacing_mm=(2.0, 2.0, 2.0), min_shape=PATCH
    )
    settings = InferenceSettings(patch_size=PATCH, patch_overlap=(0, 0, 0))
    network = build_module(NETWORK).eval()
    return Segmenter(network, spec, settings, torch.device("cpu"), config=NETWORK)


@pytest.fixture(scope="module")
def tiny_registered_model(tmp_path_factory) -> str:
    """An untrained tiny cascade (V-Net in a 24 mm box, localiser on 2 mm voxels) logged
    and registered as ``sn-vnet-tiny@champion``."""
    work = tmp_path_factory.mktemp("tiny_model")
    store = f"sqlite:///{work}/mlflow.db"
    tracking.configure(store)
    run = tracking.RunLogger.start("tiny", "tiny", artifact_location=str(work / "mlruns"))
    torch.manual_seed(0)
    network = build_module(NETWORK)
    spec = PreprocessingSpec(
        channels=("echo-1", "echo-2"), min_shape=PATCH, roi_mm=(24.0, 24.0, 24.0)
    )
    settings = InferenceSettings(patch_size=PATCH, patch_overlap=(0, 0, 0))
    uri = tracking.log_segmenter(
        run.run_id, network, NETWORK, spec, settings, localiser=_tiny_localiser()
    )
    tracking.register(uri, "sn-vnet-tiny", "champion")
    run.finish()
    return store


def _hidden_env(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "hide"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(HIDE_PACKAGE)
    return {**os.environ, "PYTHONPATH": str(folder)}


def test_the_model_loads_and_predicts_where_sn_platform_is_not_importable(
    tiny_registered_model, tmp_path
):
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT, tiny_registered_model, MODEL],
        capture_output=True, text=True, cwd=tmp_path, env=_hidden_env(tmp_path), timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert "/code/sn_platform/" in outcome["origin"]
    assert Path(sn_platform.__file__).parent not in Path(outcome["origin"]).parents
    assert outcome["shape"] == [1, 1, *PATCH]
    tracking.configure(tiny_registered_model)
    model = mlflow.pyfunc.load_model(MODEL)
    expected = model.predict(model.input_example).ravel()
    np.testing.assert_allclose(outcome["probability"], expected, rtol=1e-5, atol=1e-6)
    # The exported network is the same function of the patch (no grid sampling at one patch).
    np.testing.assert_allclose(outcome["exported"], expected, rtol=1e-5, atol=1e-6)
    assert 0 < min(expected) and max(expected) < 1


def test_the_localiser_travels_inside_the_model(tiny_registered_model):
    tracking.configure(tiny_registered_model)
    segmenter = tracking.load_segmenter(MODEL)
    expected = _tiny_localiser()
    localiser = segmenter.localiser
    assert segmenter.spec.roi_mm == (24.0, 24.0, 24.0)
    assert localiser is not None and localiser.spec == expected.spec
    assert localiser.settings == expected.settings and localiser.config == NETWORK
    for name, tensor in expected.model.state_dict().items():
        assert torch.equal(localiser.model.state_dict()[name].cpu(), tensor), name
    folder = mlflow.artifacts.download_artifacts(MODEL + "/artifacts/localiser_network.pt2")
    example = torch.rand(2, 2, *PATCH)
    exported = torch.export.load(folder).module()(example)
    with torch.no_grad():
        direct = torch.sigmoid(expected.model(example))
    torch.testing.assert_close(exported, direct)


def test_mlflow_models_predict_serves_the_saved_input_example(tiny_registered_model, tmp_path):
    tracking.configure(tiny_registered_model)
    example = mlflow.artifacts.download_artifacts(f"{MODEL}/serving_input_example.json")
    output = tmp_path / "predictions.json"
    command = [
        sys.executable, "-m", "mlflow", "models", "predict", "-m", MODEL, "-i", example,
        "-t", "json", "-o", str(output), "--env-manager", "local",
    ]  # fmt: skip
    env = {**_hidden_env(tmp_path), "MLFLOW_TRACKING_URI": tiny_registered_model}
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = np.asarray(json.loads(output.read_text())["predictions"])
    model = mlflow.pyfunc.load_model(MODEL)
    np.testing.assert_allclose(
        predictions, model.predict(model.input_example), rtol=1e-5, atol=1e-6
    )


def test_the_model_pins_the_installed_versions_of_what_it_imports(tiny_registered_model):
    tracking.configure(tiny_registered_model)
    path = mlflow.artifacts.download_artifacts(f"{MODEL}/requirements.txt")
    lines = Path(path).read_text().split()
    assert f"torch=={torch.__version__}" in lines
    assert f"mlflow=={mlflow.__version__}" in lines
    assert {line.split("==")[0] for line in lines} >= {"torchio", "nibabel", "numpy", "scipy"}


def test_a_registration_repeated_once_per_tag_reuses_its_version(tiny_registered_model):
    tracking.configure(tiny_registered_model)  # it holds sn-vnet-tiny version 1
    model_uri = mlflow.MlflowClient().get_model_version("sn-vnet-tiny", "1").source
    tags = {"sweep_run_id": "abc"}
    first = tracking.register(model_uri, "sn-vnet-tiny", "repeat", tags, once_per="sweep_run_id")
    again = tracking.register(model_uri, "sn-vnet-tiny", "best", tags, "d", once_per="sweep_run_id")
    other = tracking.register(model_uri, "sn-vnet-tiny", "repeat", {"sweep_run_id": "xyz"},
                              once_per="sweep_run_id")  # fmt: skip
    assert (first, again, other) == ("2", "2", "3")
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias("sn-vnet-tiny", "best").version) == "2"
    assert client.get_model_version("sn-vnet-tiny", "2").description == "d"
