"""Where a run computes: the device, its mixed precision and autocast.

Shared by every stage (training, inference, tracking), so it sits below all of them."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

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
