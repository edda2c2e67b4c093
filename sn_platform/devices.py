"""Where a run computes: the device, its mixed precision and autocast.

Shared by every stage (training, inference, tracking), so it sits below all of them."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch

# auto: bf16 where CUDA supports it, float32 elsewhere.
PRECISIONS = ("auto", "none", "bf16", "fp16")
# A run's torch.compile: auto compiles on CUDA only; true asks for it (CUDA only too).
COMPILE_CHOICES = ("auto", True, False)


def select_device(name: str = "auto") -> torch.device:
    """``auto`` takes CUDA when available, else CPU; ``cpu``, ``cuda`` or ``cuda:N`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for but CUDA is not available; use device=auto")
    return device


def effective_precision(device: torch.device, precision: str) -> str:
    """Mixed precision runs on CUDA only; elsewhere a precision asked for falls back to
    ``none`` with a warning. ``auto`` is bf16 on a CUDA device that supports it, else none."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "none"
    if precision != "none" and device.type != "cuda":
        warnings.warn(
            f"mixed precision {precision} needs CUDA; running in float32 on {device}",
            stacklevel=2,
        )
        return "none"
    return precision


def effective_compile(device: torch.device, compile: bool | str) -> bool:
    """Whether a run trains through ``torch.compile``: on CUDA only, where ``compile`` is
    true or ``auto``."""
    if compile not in COMPILE_CHOICES:
        raise ValueError(f"compile must be one of {COMPILE_CHOICES}, got {compile!r}")
    return device.type == "cuda" and compile in (True, "auto")


@dataclass(frozen=True)
class Runtime:
    """Where a run computes, in which precision and whether compiled, resolved once for
    training and validation."""

    device: torch.device
    precision: str = "none"
    compile: bool = False

    @classmethod
    def resolve(
        cls, device: str = "auto", precision: str = "auto", compile: bool | str = "auto"
    ) -> Runtime:
        """The device ``device`` names, the precision it supports (``effective_precision``)
        and whether it compiles (``effective_compile``): bf16 and compiled on CUDA by default."""
        chosen = select_device(device)
        return cls(
            chosen, effective_precision(chosen, precision), effective_compile(chosen, compile)
        )


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Autocast to bf16/fp16 on CUDA; no-op for ``none``."""
    if precision == "none":
        yield
        return
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
