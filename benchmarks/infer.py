"""Seconds per subject of sn-infer on CPU, local engine vs Ray Data engine, and the
cascade's FLOPs per subject against the CPU's measured FLOP rate; prints JSON.

    python benchmarks/infer.py --data data/phantom [--subjects 8] [--model vnet_small]

The cascade (the ``localiser`` experiment's coarse network over the whole field of view,
then the segmenter in its box) is logged untrained to a temporary MLflow store: inference
time does not depend on the weights, except that an untrained localiser may find nothing
(the box then sits at the volume's centre, same cost). The phantom's realistic field of
view is used. Ray's figure includes starting the actors and loading one model replica per
actor.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from functools import partial
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from report import cpu_gflops
from torch.utils.flop_counter import FlopCounterMode

from sn_platform import tracking
from sn_platform.composition import CONFIG_DIR
from sn_platform.data.bids import discover_subjects
from sn_platform.inference.batch import local_engine, prepare, select_subjects
from sn_platform.inference.options import BatchJob, InferenceOptions, RaySettings
from sn_platform.inference.predictor import Segmenter
from sn_platform.inference.ray_engine import ray_engine
from sn_platform.models.factory import build_module
from sn_platform.training.assembly import run_spec


def untrained(overrides: list[str]) -> Segmenter:
    """The segmenter of the composed config ``overrides``, untrained, on CPU."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        spec = run_spec(compose(config_name="config", overrides=overrides))
    model = build_module(spec.model).eval()
    device = torch.device("cpu")
    return Segmenter(
        model, spec.data.preprocessing, spec.inference, device, config=dict(spec.model)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/phantom"))
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--model", default="vnet_small")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/sn-bench-infer"))
    arguments = parser.parse_args()
    shutil.rmtree(arguments.work, ignore_errors=True)
    torch.manual_seed(0)
    localiser = untrained(["experiment=localiser"])
    segmenter = untrained([f"model={arguments.model}"])
    store = f"sqlite:///{arguments.work}/mlflow.db"
    tracking.configure(store)
    run = tracking.RunLogger.start("benchmark", "infer", artifact_location=str(arguments.work))
    model_uri = tracking.log_segmenter(
        run.run_id, segmenter.model, segmenter.config, segmenter.spec, segmenter.settings,
        localiser,
    )  # fmt: skip
    participants = select_subjects(arguments.data, None)[: arguments.subjects]
    options = InferenceOptions(progress=False, ray=RaySettings(num_actors=arguments.actors))
    timings = {}
    for name in ("local", "ray"):
        job = BatchJob(arguments.data, arguments.work / name, options)
        if name == "local":
            segmenters = prepare([tracking.load_segmenter(model_uri)], options)
            engine = local_engine(segmenters, job)
        else:
            engine = ray_engine(partial(tracking.load_segmenters, [model_uri], store), job)
        start = time.perf_counter()
        results = engine(participants)
        timings[name] = (time.perf_counter() - start) / len(participants)
        assert all("row" in r for r in results), results
    (record,) = discover_subjects(arguments.data, subjects=participants[:1], label_source=None)
    cascade = tracking.load_segmenter(model_uri)
    with FlopCounterMode(display=False) as counter:
        cascade.predict(record)
    gflop = counter.get_total_flops() / 1e9
    rate = cpu_gflops()
    print(
        json.dumps(
            {
                "benchmark": "infer_seconds_per_subject",
                "machine": platform.processor() or platform.machine(),
                "cpus": torch.get_num_threads(),
                "model": arguments.model,
                "subjects": len(participants),
                "ray_actors": arguments.actors,
                "local_s_per_subject": round(timings["local"], 3),
                "ray_s_per_subject": round(timings["ray"], 3),
                "gflop_per_subject": round(gflop, 2),
                "cpu_matmul_gflop_per_s": round(rate, 1),
                "flop_bound_s_per_subject": round(gflop / rate, 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
