"""How the MLflow UI opens on the training runs: the page of an experiment's runs, and a
parent run's description linking to its child runs with their most-compared metrics."""

from __future__ import annotations

import math
from collections.abc import Sequence

import mlflow

from sn_platform.tracking.store import PARENT_TAG
from sn_platform.tracking.views import COMPARED_VIEW_KEY

NOTE_TAG = "mlflow.note.content"


def _value(metrics: dict[str, float], key: str) -> str:
    value = metrics.get(key, float("nan"))
    return "n/a" if math.isnan(value) else f"{value:.4g}"


def link_children(parent_run_id: str, metrics: Sequence[str], heading: str = "") -> str:
    """Write the parent's description: a Markdown table of its children by name, each a
    link to its run page with the last values of ``metrics``. Returns the text."""
    client = mlflow.MlflowClient()
    experiment = client.get_run(parent_run_id).info.experiment_id
    found = client.search_runs(
        [experiment], f"tags.`{PARENT_TAG}` = '{parent_run_id}'", max_results=10_000
    )
    children = sorted(found, key=lambda run: run.info.run_name or "")
    lines = [heading, ""] if heading else []
    lines += ["| run | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for child in children:
        link = f"[{child.info.run_name}](#/experiments/{experiment}/runs/{child.info.run_id})"
        values = [_value(child.data.metrics, key) for key in metrics]
        lines.append(f"| {link} | " + " | ".join(values) + " |")
    text = "\n".join(lines) + "\n"
    client.set_tag(parent_run_id, NOTE_TAG, text)
    return text


def runs_page(experiment_id: str) -> str:
    """The UI page (after the server's URL) of the experiment's training runs, in the view
    of the compared metrics (``tracking.views``), which ``experiment_id`` saves.

    MLflow 3.17's UI opens an experiment on the GenAI or the model-training view after a
    switch kept in the browser (the ``mlflow.experimentKind`` tag decides in older 3.x);
    ``workflowType`` in the page's query makes it the runs table.
    """
    return (
        f"#/experiments/{experiment_id}/runs?workflowType=machine_learning"
        f"&viewStateShareKey={COMPARED_VIEW_KEY}"
    )
