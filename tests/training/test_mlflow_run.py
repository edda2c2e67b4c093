"""What a training run records for MLflow's UI: its dataset as an input, the experiment's kind."""

from __future__ import annotations

import json

import mlflow
import pytest

from sn_platform import tracking

pytestmark = pytest.mark.slow


def test_a_training_run_logs_its_dataset_and_the_experiment_its_kind(registered_model):
    tracking.configure(registered_model)
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("sn-vnet", "champion")
    run = client.get_run(str(version.run_id))
    (dataset_input,) = run.inputs.dataset_inputs
    dataset = dataset_input.dataset
    assert dataset.digest == run.data.tags["sn.dataset_fingerprint"]
    assert dataset.name == run.data.tags["sn.dataset_root"].rsplit("/", 1)[-1]
    assert json.loads(dataset.profile) == {"subjects": 8, "train": 4, "validation": 4, "test": 0}
    assert {t.key: t.value for t in dataset_input.tags} == {"mlflow.data.context": "training"}
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert run.info.run_name == "smoke-fold0"
