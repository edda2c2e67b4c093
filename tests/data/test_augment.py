"""Rician noise: deterministic given its seed, Rayleigh-distributed on zero signal."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchio as tio

from sn_platform.data.augment import RandomRicianNoise, RicianNoise


def _subject(value: float) -> tio.Subject:
    data = torch.full((1, 40, 40, 40), value)
    data[0, 0, 0, 0] = 100.0  # sets the 99th-percentile reference only through the bright part
    bright = torch.full((1, 40, 40, 40), 100.0)
    return tio.Subject(echo1=tio.ScalarImage(tensor=bright), echo2=tio.ScalarImage(tensor=data))


def test_rician_noise_on_zero_signal_is_rayleigh():
    noisy = RicianNoise(std=0.1, seed=3)(_subject(0.0))
    values = noisy["echo2"].data.flatten()[1:].numpy()
    sigma = 0.1 * 100.0
    assert values.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.02)
    assert (values >= 0).all()


def test_random_rician_noise_replays_from_history():
    torch.manual_seed(0)
    transformed = RandomRicianNoise(std=(0.01, 0.05))(_subject(50.0))
    replayed = transformed.get_composed_history()(_subject(50.0))
    assert torch.equal(transformed["echo2"].data, replayed["echo2"].data)
    assert not torch.equal(transformed["echo1"].data, transformed["echo2"].data)
