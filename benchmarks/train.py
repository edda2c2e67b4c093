"""Training throughput: patches per second of the data pipeline alone, of the model step
alone (fp32, bf16, bf16 + torch.compile), and of both together; the step's FLOPs and the
achieved TFLOP/s; and inference on the accelerator against the CPU. Prints JSON.

    python benchmarks/train.py [--data DIR] [--model vnet_small] [--workers 0] [--batch 4]

Runs the platform's own code (``Trainer``, the TorchIO queue, ``predict_array``) with the
segmenter's settings of ``conf/data/phantom.yaml``, on a small-head phantom made in
``--data`` when absent. Needs no Hydra, MLflow or Ray, so it runs wherever the core does.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
import torchio as tio
from models import PRESETS
from torch.utils.flop_counter import FlopCounterMode

from sn_platform.data.bids import discover_subjects
from sn_platform.data.loaders import patch_loader, stack_channels, subjects_dataset, training_queue
from sn_platform.data.preprocessing import LABEL_KEY, PreprocessingSpec
from sn_platform.devices import Runtime
from sn_platform.inference.predictor import InferenceSettings, predict_array
from sn_platform.models.losses import DiceLoss
from sn_platform.models.vnet import VNet
from sn_platform.phantom.settings import PhantomConfig, SiteProtocol
from sn_platform.phantom.writer import generate_cohort
from sn_platform.seeding import seed_everything
from sn_platform.training.engine import Trainer
from sn_platform.training.settings import TrainerSettings

LABELS = ("SN", "RN", "CC")
PATCH = (64, 64, 8)
LABEL_PROBABILITIES = {0: 0.3, 1: 0.35, 2: 0.2, 3: 0.15}
# The 3 x 3 x 3 presets of benchmarks/models.py (beside this script); the 5 x 5 x 5,
# depth-5 Milletari V-Net needs more than the patch's 8 slices.
MODELS = ("vnet_small", "vnet_paper")
VARIANTS = {"fp32": ("none", False), "bf16": ("bf16", False), "bf16+compile": ("bf16", True)}


def small_cohort(root: Path, subjects: int) -> Path:
    """A small-head phantom (the tests' protocol at site A) in ``root``, made once."""
    if not (root / "participants.tsv").exists():
        config = PhantomConfig(
            subjects=subjects, seed=0, sites=(SiteProtocol(fov_mm=(136.0, 136.0, 40.0)),),
            head_scale=0.5, midbrain_offset_mm=(8.0, 8.0, 5.0),
        )  # fmt: skip
        generate_cohort(root, config, n_jobs=4)
    return root


def timed(batches: Iterable[Any]) -> tuple[int, float]:
    """Patches drawn from ``batches`` and the seconds it took."""
    start, patches = time.perf_counter(), 0
    for batch in batches:
        patches += int(batch[LABEL_KEY][tio.DATA].shape[0])
    return patches, time.perf_counter() - start


def step_flops(trainer: Trainer, batch: Mapping[str, Any]) -> float:
    """FLOPs of one forward and backward pass on ``batch``."""
    with FlopCounterMode(display=False) as counter:
        trainer.train_epoch([batch], 1)
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "sn-train-bench")
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--model", choices=MODELS, default="vnet_small")
    parser.add_argument("--workers", type=int, default=0, help="TorchIO queue workers")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--samples", type=int, default=16, help="patches per volume per epoch")
    parser.add_argument("--steps", type=int, default=30, help="timed model steps per variant")
    arguments = parser.parse_args()
    seed_everything(0)
    records = discover_subjects(small_cohort(arguments.data, arguments.subjects), labels=LABELS)
    spec = PreprocessingSpec(min_shape=PATCH, roi_mm=(64.0, 64.0, 64.0))
    dataset = subjects_dataset(records, spec, labels=LABELS)
    patches_per_epoch = len(records) * arguments.samples

    def loader() -> Any:
        queue = training_queue(
            dataset, PATCH, arguments.samples, 4 * arguments.samples,
            LABEL_PROBABILITIES, arguments.workers,
        )  # fmt: skip
        return patch_loader(queue, arguments.batch)

    loader_patches, loader_seconds = timed(loader())
    cached = list(loader())
    runtime = Runtime.resolve("auto", "none")
    results: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp())
    for name, (precision, compiled) in VARIANTS.items():
        if runtime.device.type != "cuda" and name != "fp32":
            continue
        preset = PRESETS[arguments.model]
        model = VNet(3, len(LABELS) + 1, patch_size=PATCH, **preset)
        settings = TrainerSettings(precision=precision, compile=compiled, progress=False)
        trainer = Trainer(
            model, DiceLoss(), torch.optim.AdamW(model.parameters(), lr=1e-3), spec, settings,
            Runtime(runtime.device, precision), work / name,
        )  # fmt: skip
        start = time.perf_counter()
        trainer.train_epoch(cached[:2], 2)  # warm-up (and compilation)
        warm_up = time.perf_counter() - start
        steps = [cached[i % len(cached)] for i in range(arguments.steps)]
        start = time.perf_counter()
        trainer.train_epoch(steps, len(steps))
        if runtime.device.type == "cuda":
            torch.cuda.synchronize()
        step_seconds = (time.perf_counter() - start) / len(steps)
        start = time.perf_counter()
        trainer.train_epoch(loader(), None)
        epoch_seconds = time.perf_counter() - start
        flops = step_flops(trainer, cached[0]) if not compiled else results["fp32"]["step_flops"]
        results[name] = {
            "warm_up_s": round(warm_up, 2),
            "step_ms": round(1000 * step_seconds, 2),
            "model_patches_per_s": round(arguments.batch / step_seconds, 1),
            "pipeline_and_model_patches_per_s": round(patches_per_epoch / epoch_seconds, 1),
            "step_flops": flops,
            "achieved_tflop_per_s": round(flops / step_seconds / 1e12, 3),
        }
        last_model = trainer.model
    volume = stack_channels(dataset[0], spec)
    inference = InferenceSettings(labels=LABELS, patch_size=PATCH, patch_overlap=(16, 16, 2))
    agreement = {}
    if runtime.device.type == "cuda":
        reference = predict_array(last_model.cpu(), volume, inference, torch.device("cpu"))
        model = last_model.to(runtime.device)
        for precision in ("none", "bf16"):
            start = time.perf_counter()
            probability = predict_array(model, volume, inference, runtime.device, precision)
            agreement[precision] = {
                "seconds": round(time.perf_counter() - start, 3),
                "max_abs_difference_vs_cpu": float((probability - reference).abs().max()),
            }
    shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {
                "benchmark": "train_throughput",
                "device": torch.cuda.get_device_name() if runtime.device.type == "cuda" else "cpu",
                "machine": platform.processor() or platform.machine(),
                "torch": torch.__version__,
                "model": arguments.model,
                "patch": list(PATCH),
                "batch": arguments.batch,
                "queue_workers": arguments.workers,
                "pipeline_patches_per_s": round(loader_patches / loader_seconds, 1),
                "variants": results,
                "inference_vs_cpu": agreement,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
