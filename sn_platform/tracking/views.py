"""The MLflow UI's saved view of an experiment's runs table: the metrics runs are compared
by as its columns.

The UI keeps a view's state (JSON) in an experiment tag ``mlflow.sharedViewState.<key>``
and opens it from the page's query ``?viewStateShareKey=<key>`` (its "Share" button).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

# What runs are compared by: the columns of the runs table and of a parent's table of its
# children.
COMPARED_METRICS = ("val/dsc", "val/hd95_mm", "val/nm_ratio_icc", "val/chi_mean_icc", "train/loss")
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
COMPARED_VIEW_KEY = "sn-compared-metrics"
# The UI's default attribute columns, kept beside the metrics.
DEFAULT_ATTRIBUTES = ("Source", "Models", "Dataset")


def column(kind: str, key: str) -> str:
    """The UI's name of a runs-table column: ``column("metrics", "val/dsc")`` is
    ``metrics.`val/dsc```."""
    return f"{kind}.`{key}`"


def compared_view_tags(metrics: Sequence[str] = COMPARED_METRICS) -> dict[str, str]:
    """The experiment tag of the view with ``metrics`` as columns after the UI's default
    attributes, newest runs first."""
    state = {
        "selectedColumns": [column("attributes", name) for name in DEFAULT_ATTRIBUTES]
        + [column("metrics", key) for key in metrics],
        "orderByKey": "attributes.start_time",
        "orderByAsc": False,
    }
    return {SHARED_VIEW_PREFIX + COMPARED_VIEW_KEY: json.dumps(state)}
