"""The Ray Data engine of sn-infer: an actor pool, one model replica per actor, the same
per-subject work as the local engine (``sn_platform.inference.batch.run_subject``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import ray
import ray.data
import torch

from sn_platform.cpu_quota import quota_threads
from sn_platform.inference.batch import Engine, prepare, run_subject
from sn_platform.inference.options import BatchJob
from sn_platform.inference.predictor import Segmenter

# Loads the models inside an actor; must pickle (a module-level function or a partial of one).
SegmenterLoader = Callable[[], Sequence[Segmenter]]
# Says, at every start, that the local Ray's token authentication is on (it stays on).
TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"


def start_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the Ray cluster at ``address``, or start a local Ray of ``num_cpus`` CPUs (all
    when None), unless Ray is running already; quietly: Ray's warnings and errors only, no
    dashboard, no forwarded worker output, no progress lines from Ray Data.
    """
    if ray.is_initialized():
        return
    logging.getLogger(TOKEN_NOTICE_LOGGER).setLevel(logging.ERROR)
    ray.init(
        address=address,
        num_cpus=num_cpus if address is None else None,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    # Ray Data set its loggers up when first imported (above): INFO, progress included.
    logging.getLogger("ray.data").setLevel(logging.WARNING)


class SegmentationActor:
    """Loads the models once per actor; segments the subjects of each batch."""

    def __init__(self, load_segmenters: SegmenterLoader, job: BatchJob, threads: int):
        torch.set_num_threads(quota_threads(threads))
        self.job = job
        self.segmenters = prepare(load_segmenters(), job.options)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = [run_subject(self.segmenters, self.job, str(scan)) for scan in batch["scan"]]
        return {"result": np.array([json.dumps(r) for r in results])}


def ray_engine(load_segmenters: SegmenterLoader, job: BatchJob) -> Engine:
    """Runs subjects on a Ray actor pool (a local Ray, or the cluster at
    ``job.options.ray.address``). The input and output folders must be reachable from
    every node (a shared filesystem)."""
    pool = job.options.ray
    job = replace(job, root=Path(job.root).resolve(), output=Path(job.output).resolve())

    def run(scans: list[str]) -> list[dict[str, Any]]:
        start_ray(pool.address)
        items = [{"scan": scan} for scan in scans]
        dataset = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
        results = dataset.map_batches(
            SegmentationActor,
            fn_constructor_kwargs={
                "load_segmenters": load_segmenters,
                "job": job,
                "threads": int(max(1, pool.cpus_per_actor)),
            },
            batch_size=1,
            concurrency=max(1, min(pool.num_actors, len(items))),
            num_cpus=pool.cpus_per_actor,
            num_gpus=pool.gpus_per_actor,
        ).take_all()
        return [json.loads(item["result"]) for item in results]

    return run
