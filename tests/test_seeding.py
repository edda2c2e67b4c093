"""Seeding: a seeded block draws from its seed alone and leaves the caller's streams alone."""

from __future__ import annotations

import random

import numpy as np
import torch

from sn_platform.seeding import seed_everything, seeded


def _draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(1))  # noqa: NPY002


def test_a_seeded_block_depends_on_its_seed_alone_and_restores_the_streams():
    seed_everything(1)
    with seeded(7):
        inside = _draws()
    after = _draws()
    seed_everything(2)
    with seeded(7):
        assert _draws() == inside  # whatever the streams were before
    seed_everything(1)
    assert _draws() == after  # as if the block had drawn nothing
    with seeded(8):
        assert _draws() != inside
