"""Training throughput: patches per second of each data pipeline alone (TorchIO's queue,
``data.pipeline=queue``, against the patches drawn by index, ``data.pipeline=patches``) at
each worker count, of the model step alone (fp32; on CUDA also bf16 and bf16 +
``torch.compile``) and of pipeline and model together; the step's FLOPs and TFLOP/s; the
CPU's float32 matrix-multiply rate; on CUDA, inference against the CPU. Prints JSON.

    python benchmarks/train.py [--data DIR] [--augment paper] [--workers 0 2] [--threads N]
                               [--output benchmarks/results/pipeline-cpu.json]

Both pipelines are the platform's own (``data.batches.training_batches``), with the
segmenter's patch, labels, label probabilities and box (``conf/data/phantom.yaml``), the
same augmentation (``conf/augment/NAME.yaml``) and the same boxes, on a small-head phantom
made in ``--data`` when absent. The epochs of every (pipeline, workers) pair are timed in
turn, round after round, so that a busier spell of the machine falls on each of them, and
the median epoch counts; the first epoch (for the patches, the workers' one start) is
reported apart.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torchio as tio
from cohort import small_phantom
from hydra.utils import instantiate
from models import PRESETS
from omegaconf import OmegaConf
from report import emit, machine
from torch.utils.flop_counter import FlopCounterMode

from sn_platform.composition import CONFIG_DIR
from sn_platform.data.batches import EpochBatches, training_batches
from sn_platform.data.bids import discover_subjects
from sn_platform.data.loaders import stack_channels, subjects_dataset
from sn_platform.data.preprocessing import LABEL_KEY, PreprocessingSpec
from sn_platform.data.settings import PIPELINES, DataSettings, SplitSettings
from sn_platform.devices import Runtime
from sn_platform.inference.predictor import InferenceSettings, predict_array
from sn_platform.models.losses import DiceLoss
from sn_platform.models.vnet import VNet
from sn_platform.seeding import seed_everything
from sn_platform.training.engine import Trainer
from sn_platform.training.settings import TrainerSettings

LABELS = ("SN", "RN", "CC")
PATCH = (64, 64, 8)
LABEL_PROBABILITIES = {0: 0.3, 1: 0.35, 2: 0.2, 3: 0.15}
SPEC = PreprocessingSpec(min_shape=PATCH, roi_mm=(64.0, 64.0, 64.0))
# The 3 x 3 x 3 presets of benchmarks/models.py (beside this script); the 5 x 5 x 5,
# depth-5 Milletari V-Net needs more than the patch's 8 slices.
MODELS = ("vnet_small", "vnet_paper")
VARIANTS = {"fp32": ("none", False), "bf16": ("bf16", False), "bf16+compile": ("bf16", True)}

# What one epoch's batches go through: counted alone, or a training step each.
Consume = Callable[[Iterable[Mapping[str, Any]]], object]


def patches_drawn(batches: Iterable[Mapping[str, Any]]) -> int:
    """Patches in ``batches`` (drawn, and nothing else done with them)."""
    return sum(int(batch[LABEL_KEY][tio.DATA].shape[0]) for batch in batches)


def timed_epochs(
    pipelines: Mapping[str, EpochBatches], consume: Consume, patches: int, rounds: int
) -> dict[str, dict[str, float]]:
    """Patches per second of each pipeline: its first epoch apart, then the median of
    ``rounds`` epochs, the pipelines taking turns."""
    seconds: dict[str, list[float]] = {name: [] for name in pipelines}
    for epoch in range(rounds + 1):
        for name, epochs in pipelines.items():
            start = time.perf_counter()
            consume(epochs(epoch))
            seconds[name].append(time.perf_counter() - start)
    return {
        name: {
            "patches_per_s": round(patches / statistics.median(times[1:]), 1),
            "first_epoch_s": round(times[0], 2),
        }
        for name, times in seconds.items()
    }


def step_flops(trainer: Trainer, batch: Mapping[str, Any]) -> float:
    """FLOPs of one forward and backward pass on ``batch``."""
    with FlopCounterMode(display=False) as counter:
        trainer.train_epoch([batch], 1)
    return float(counter.get_total_flops())


def speedups(rates: Mapping[str, Mapping[str, float]], workers: list[int]) -> dict[str, float]:
    """The patches' rate over the queue's, at each worker count and best against best."""
    figures = {
        f"workers_{w}": rates[f"patches/workers_{w}"]["patches_per_s"]
        / rates[f"queue/workers_{w}"]["patches_per_s"]
        for w in workers
    }
    best = {p: max(rates[f"{p}/workers_{w}"]["patches_per_s"] for w in workers) for p in PIPELINES}
    figures["best_vs_best"] = best["patches"] / best["queue"]
    return {key: round(value, 2) for key, value in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "sn-train-bench")
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--model", choices=MODELS, default="vnet_small")
    parser.add_argument("--augment", default="paper", help="conf/augment/NAME.yaml")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--samples", type=int, default=16, help="patches per volume per epoch")
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs, pipeline alone")
    parser.add_argument("--model-rounds", type=int, default=2, help="timed epochs with model")
    parser.add_argument("--steps", type=int, default=30, help="timed model steps per variant")
    parser.add_argument("--output", type=Path, help="also keep the JSON in this file")
    arguments = parser.parse_args()
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    seed_everything(0)
    data = small_phantom(arguments.data, arguments.subjects, seed=0)
    records = discover_subjects(data, labels=LABELS)
    augment = Path(CONFIG_DIR) / "augment" / f"{arguments.augment}.yaml"
    augmentation = instantiate(OmegaConf.load(augment))
    patches_per_epoch = len(records) * arguments.samples
    runtime = Runtime.resolve("auto", "none", False)
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        pipelines = {
            f"{pipeline}/workers_{workers}": stack.enter_context(
                training_batches(
                    records,
                    DataSettings(
                        root=None, preprocessing=SPEC, splits=SplitSettings(file="unused"),
                        labels=LABELS, patch_size=PATCH, pipeline=pipeline,
                        samples_per_volume=arguments.samples, queue_length=4 * arguments.samples,
                        batch_size=arguments.batch, num_workers=workers,
                        label_probabilities=LABEL_PROBABILITIES,
                    ),
                    augmentation,
                    seed=0,
                )
            )
            for pipeline in PIPELINES
            for workers in arguments.workers
        }  # fmt: skip
        alone = timed_epochs(pipelines, patches_drawn, patches_per_epoch, arguments.rounds)
        cached = list(next(iter(pipelines.values()))(0))
        work = Path(tempfile.mkdtemp())
        for name, (precision, compiled) in VARIANTS.items():
            if runtime.device.type != "cuda" and name != "fp32":
                continue
            model = VNet(3, len(LABELS) + 1, patch_size=PATCH, **PRESETS[arguments.model])
            settings = TrainerSettings(precision=precision, compile=compiled, progress=False)
            trainer = Trainer(
                model, DiceLoss(), torch.optim.AdamW(model.parameters(), lr=1e-3), SPEC,
                settings, Runtime(runtime.device, precision, compiled), work / name,
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
            flops = results["fp32"]["step_flops"] if compiled else step_flops(trainer, cached[0])
            results[name] = {
                "warm_up_s": round(warm_up, 2),
                "step_ms": round(1000 * step_seconds, 2),
                "model_patches_per_s": round(arguments.batch / step_seconds, 1),
                "with_pipeline": timed_epochs(
                    pipelines, partial(trainer.train_epoch, total=None), patches_per_epoch,
                    arguments.model_rounds,
                ),
                "step_flops": flops,
                "achieved_tflop_per_s": round(flops / step_seconds / 1e12, 3),
            }  # fmt: skip
            last_model = trainer.model
    agreement = {}
    if runtime.device.type == "cuda":
        volume = stack_channels(subjects_dataset(records[:1], SPEC, labels=LABELS)[0], SPEC)
        inference = InferenceSettings(labels=LABELS, patch_size=PATCH, patch_overlap=(16, 16, 2))
        reference = predict_array(last_model.cpu(), volume, inference, torch.device("cpu"))
        on_device = last_model.to(runtime.device)
        for precision in ("none", "bf16"):
            start = time.perf_counter()
            probability = predict_array(on_device, volume, inference, runtime.device, precision)
            agreement[precision] = {
                "seconds": round(time.perf_counter() - start, 3),
                "max_abs_difference_vs_cpu": float((probability - reference).abs().max()),
            }
    figures = {
        "benchmark": "train_throughput",
        "device": torch.cuda.get_device_name() if runtime.device.type == "cuda" else "cpu",
        **machine(),
        "model": arguments.model,
        "augment": arguments.augment,
        "patch": list(PATCH),
        "batch": arguments.batch,
        "subjects": len(records),
        "samples_per_volume": arguments.samples,
        "pipeline_patches_per_s": alone,
        "patches_over_queue": speedups(alone, arguments.workers),
        "variants": results,
        "inference_vs_cpu": agreement,
    }
    emit(figures, arguments.output, f"throughput_{arguments.augment}")


if __name__ == "__main__":
    main()
