"""Echo-time augmentation of a multi-echo GRE: the same subject as another protocol's
echo times would have imaged it.

A magnitude echo follows ``S_n = M0 * exp(-TE_n * R2*)`` with ``TE_n = TE_1 + (n - 1) * dTE``,
so ``ln S_n`` is linear in the echo number ``n`` with slope ``s = -R2* * dTE``. Fitted per
voxel over the subject's echoes, the slope moves every echo to new echo times without
knowing them in milliseconds: a first echo later by ``shift`` echo spacings and a spacing
``factor`` times as long multiply echo ``n`` by ``exp((shift + (factor - 1) * (n - 1)) * s)``.
Each image keeps its own noise and its departures from one exponential; the QSM map, which
does not depend on the echo time, and any single-echo image are left alone.
"""

from __future__ import annotations

from typing import Any

import torch
import torchio as tio
from torchio.transforms.augmentation.random_transform import RandomTransform

from sn_platform.data.channels import key_echo_number

# Steepest decay per echo spacing the fit may report (R2* * dTE): 3 is 400 Hz at 7.5 ms,
# far beyond iron-rich grey matter; a rising fit (noise, flow) is taken as no decay.
MAX_DECAY_PER_ECHO = 3.0


def echo_log_slope(echoes: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
    """Per-voxel least-squares slope of ``ln S`` against the echo number.

    Parameters
    ----------
    echoes : magnitudes (E, X, Y, Z), E >= 2, non-negative
    numbers : echo numbers (E,)

    Returns
    -------
    slope (X, Y, Z) per echo spacing (``-R2* * dTE``), clipped to ``[-3, 0]``
    """
    positive = echoes[echoes > 0]
    floor = float(positive.min()) if positive.numel() else 1.0
    logs = echoes.clamp(min=floor).log()
    centred = (numbers - numbers.mean()).to(logs.dtype).view(-1, 1, 1, 1)
    slope = (centred * logs).sum(0) / centred.square().sum()
    return slope.clamp(-MAX_DECAY_PER_ECHO, 0.0)


class EchoTimeShift(tio.IntensityTransform):
    """Move the echo times: the first later by ``shift`` echo spacings, the spacing times
    ``factor`` (``shift=0, factor=1`` is the identity).

    Parameters
    ----------
    shift : change of the first echo time, in echo spacings (-0.27: 7.5 -> 5.5 ms at 7.5 ms)
    factor : ratio of the new echo spacing to the old (0.87: 7.5 -> 6.5 ms), > 0
    """

    def __init__(self, shift: float, factor: float, **kwargs: Any):
        super().__init__(**kwargs)
        if factor <= 0:
            raise ValueError(f"factor must be > 0, got {factor}")
        self.shift = float(shift)
        self.factor = float(factor)
        self.args_names = ["shift", "factor"]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        echoes = {
            number: image
            for key, image in self.get_images_dict(subject).items()
            if (number := key_echo_number(key)) is not None
        }
        if len(echoes) < 2:
            return subject
        numbers = sorted(echoes)
        stacked = torch.cat([echoes[n].data.float() for n in numbers])
        slope = echo_log_slope(stacked, torch.tensor(numbers, dtype=torch.float32))
        for n, echo in zip(numbers, stacked, strict=True):
            exponent = self.shift + (self.factor - 1.0) * (n - 1)
            echoes[n].set_data((echo * torch.exp(exponent * slope))[None])
        return subject


class RandomEchoTimes(RandomTransform, tio.IntensityTransform):
    """Echo times drawn around the subject's: a first-echo shift uniform in ``shift`` (echo
    spacings) and a spacing factor uniform in ``factor``."""

    def __init__(
        self,
        shift: tuple[float, float] = (-0.4, 0.4),
        factor: tuple[float, float] = (0.75, 1.3),
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.shift_range = self._parse_range(shift, "shift")
        self.factor_range = self._parse_range(factor, "factor", min_constraint=0)
        if self.factor_range[0] <= 0:
            raise ValueError(f"factor must be > 0, got {factor}")

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        arguments: dict[str, Any] = {**self._get_base_args(), "copy": False}
        shift = self.sample_uniform(*self.shift_range)
        factor = self.sample_uniform(*self.factor_range)
        transformed = EchoTimeShift(shift=shift, factor=factor, **arguments)(subject)
        assert isinstance(transformed, tio.Subject)
        return transformed
