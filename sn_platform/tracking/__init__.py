"""Tracking: MLflow runs, the logged model and its registry, a private server, and the
local journal every training run logs through (``buffer``). The only stage that imports
MLflow.

A local store is ``sqlite:///mlruns/mlflow.db`` with artifacts under ``mlruns/``; a team
or a cluster uses ``mlflow server`` (``tracking=server``, ``jobs/mlflow-server.sh``).
"""

from sn_platform.tracking import buffer
from sn_platform.tracking.buffer import BufferedRun, sync, with_retries
from sn_platform.tracking.datasets import log_dataset
from sn_platform.tracking.key_figures import key_figure_table, key_figure_tags, key_figures
from sn_platform.tracking.links import link_children, runs_page
from sn_platform.tracking.models import (
    SegmenterModel,
    load_segmenter,
    load_segmenter_at,
    load_segmenters,
    log_segmenter,
    register,
)
from sn_platform.tracking.server import local_server
from sn_platform.tracking.store import (
    PARENT_TAG,
    RUN_KEY_TAG,
    RunLogger,
    absolute_uri,
    configure,
    experiment_id,
    flatten,
    source_version,
)
from sn_platform.tracking.views import COMPARED_METRICS

__all__ = [
    "COMPARED_METRICS",
    "PARENT_TAG",
    "RUN_KEY_TAG",
    "BufferedRun",
    "RunLogger",
    "SegmenterModel",
    "absolute_uri",
    "buffer",
    "configure",
    "experiment_id",
    "flatten",
    "key_figure_table",
    "key_figure_tags",
    "key_figures",
    "link_children",
    "load_segmenter",
    "load_segmenter_at",
    "load_segmenters",
    "local_server",
    "log_dataset",
    "log_segmenter",
    "register",
    "runs_page",
    "source_version",
    "sync",
    "with_retries",
]
