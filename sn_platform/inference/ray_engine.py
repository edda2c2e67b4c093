"""The Ray Data engine of sn-infer: an actor pool, one model replica per actor, the same
per-subject work as the local engine (``sn_platform.inference.batch.run_subject``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch

from sn_platform import tracking
from sn_platform.inference.batch import Engine, InferenceOptions, prepare, run_subject


class SegmentationActor:
    """Loads the models once per actor; segments the subjects of each batch."""

    def __init__(
        self,
        model_uris: Sequence[str],
        tracking_uri: str,
        options: dict[str, Any],
        root: str,
        output: str,
        label_source: str | None,
        threads: int,
    ):
        torch.set_num_threads(max(1, threads))
        tracking.configure(tracking_uri)
        self.options = InferenceOptions(**options)
        self.segmenters = prepare([tracking.load_segmenter(u) for u in model_uris], self.options)
        self.root, self.output, self.label_source = Path(root), Path(output), label_source

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = [
            run_subject(
                self.segmenters, self.root, str(participant_id), self.output, self.options,
                self.label_source,
            )
            for participant_id in batch["participant_id"]
        ]  # fmt: skip
        return {"result": np.array([json.dumps(r) for r in results])}


def ray_engine(
    model_uris: Sequence[str],
    tracking_uri: str,
    options: InferenceOptions,
    root: Path,
    output: Path,
    label_source: str | None,
    address: str | None = None,
    num_actors: int = 2,
    cpus_per_actor: float = 1.0,
    gpus_per_actor: float = 0.0,
) -> Engine:
    """Runs subjects on a Ray actor pool (a local Ray, or the cluster at ``address``).

    The input and output folders must be reachable from every node (a shared filesystem).
    """

    def run(participant_ids: list[str]) -> list[dict[str, Any]]:
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        items = [{"participant_id": p} for p in participant_ids]
        dataset = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
        results = dataset.map_batches(
            SegmentationActor,
            fn_constructor_kwargs={
                "model_uris": list(model_uris),
                "tracking_uri": tracking_uri,
                "options": asdict(options),
                "root": str(Path(root).resolve()),
                "output": str(Path(output).resolve()),
                "label_source": label_source,
                "threads": int(max(1, cpus_per_actor)),
            },
            batch_size=1,
            concurrency=max(1, min(num_actors, len(items))),
            num_cpus=cpus_per_actor,
            num_gpus=gpus_per_actor,
        ).take_all()
        return [json.loads(item["result"]) for item in results]

    return run
