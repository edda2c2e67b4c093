"""A run's dataset as an MLflow dataset input: the runs table's Dataset column, the
run page's Datasets section and the experiment's dataset filter show it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import mlflow
from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

SOURCE_TYPE = "local"


def log_dataset(
    run_id: str,
    root: Path,
    digest: str,
    subjects: Mapping[str, int],
    context: str = "training",
) -> None:
    """Log the BIDS dataset at ``root`` as an input of ``run_id``.

    Parameters
    ----------
    run_id : the run
    root : the dataset folder; its name is the dataset's name
    digest : the dataset fingerprint (a hash of every file the run reads)
    subjects : subject counts per split, e.g. ``{"train": 20, "validation": 5, "test": 5}``
    context : how the run uses it (``training``, ``evaluation``)
    """
    root = Path(root).resolve()
    profile = {"subjects": sum(subjects.values()), **subjects}
    dataset = Dataset(
        name=root.name,
        digest=digest,
        source_type=SOURCE_TYPE,
        source=json.dumps({"uri": root.as_uri()}),
        profile=json.dumps(profile),
    )
    tags = [InputTag(MLFLOW_DATASET_CONTEXT, context)]
    mlflow.MlflowClient().log_inputs(run_id, datasets=[DatasetInput(dataset, tags)])
