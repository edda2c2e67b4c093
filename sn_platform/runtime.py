"""Devices, seeding, random-number state and mixed precision: what every run sets up first.

Shared by every stage (training, inference, tracking), so it sits below all of them."""

from __future__ import annotations

import contextlib
import random
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

PRECISIONS = ("none", "bf16", "fp16")


def select_device(name: str = "auto") -> torch.device:
    """``auto`` takes CUDA when available, else CPU; ``cpu``, ``cuda`` or ``cuda:N`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for but CUDA is not available; use device=auto")
    return device


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (all devices); optionally deterministic kernels."""
    random.seed(seed)
    # The legacy global generator is what third-party code (TorchIO, MONAI) draws from.
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)


def rng_state() -> dict[str, Any]:
    """Every random-number state a training epoch consumes (for checkpoints), as tensors
    and plain values: a checkpoint loads with ``torch.load(weights_only=True)``."""
    numpy_state = np.random.get_state(legacy=False)  # noqa: NPY002
    numpy_state["state"]["key"] = torch.from_numpy(numpy_state["state"]["key"].astype(np.int64))
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": numpy_state,
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of ``rng_state``."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = {**state["numpy"], "state": dict(state["numpy"]["state"])}
    numpy_state["state"]["key"] = numpy_state["state"]["key"].numpy().astype(np.uint32)
    np.random.set_state(numpy_state)  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def effective_precision(device: torch.device, precision: str) -> str:
    """Mixed precision runs on CUDA only; elsewhere it falls back to ``none`` with a warning."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "none" and device.type != "cuda":
        warnings.warn(
            f"mixed precision {precision} needs CUDA; running in float32 on {device}",
            stacklevel=2,
        )
        return "none"
    return precision


@dataclass(frozen=True)
class Runtime:
    """Where a run computes and in which precision, resolved once for training and validation."""

    device: torch.device
    precision: str = "none"

    @classmethod
    def resolve(cls, device: str = "auto", precision: str = "none") -> Runtime:
        """The device ``device`` names and the precision it supports (``effective_precision``)."""
        chosen = select_device(device)
        return cls(chosen, effective_precision(chosen, precision))


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Autocast to bf16/fp16 on CUDA; no-op for ``none``."""
    if precision == "none":
        yield
        return
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
