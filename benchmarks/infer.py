"""Seconds per subject of sn-infer on CPU, local engine vs Ray Data engine; prints JSON.

    python benchmarks/infer.py --data data/phantom [--subjects 8] [--model vnet_small]

The model (the config's default ``vnet_small`` unless ``--model`` says otherwise) is logged
untrained to a temporary MLflow store: inference time does not depend on the weights.
The phantom's default image size (64 mm field of view, 0.5-0.6 mm in plane) is used.
Ray's figure includes starting the actors and loading one model replica per actor.
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

from sn_platform import tracking
from sn_platform.composition import CONFIG_DIR
from sn_platform.inference.batch import local_engine, prepare, select_subjects
from sn_platform.inference.options import BatchJob, InferenceOptions, RaySettings
from sn_platform.inference.ray_engine import ray_engine
from sn_platform.models.factory import build_module
from sn_platform.training.assembly import run_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/phantom"))
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--model", default="vnet_small")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/sn-bench-infer"))
    arguments = parser.parse_args()
    shutil.rmtree(arguments.work, ignore_errors=True)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"model={arguments.model}"])
    torch.manual_seed(0)
    store = f"sqlite:///{arguments.work}/mlflow.db"
    tracking.configure(store)
    run = tracking.RunLogger.start("benchmark", "infer", artifact_location=str(arguments.work))
    spec = run_spec(cfg)
    model_uri = tracking.log_segmenter(
        run.run_id,
        build_module(spec.model),
        spec.model,
        spec.data.preprocessing,
        spec.inference,
    )
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
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
