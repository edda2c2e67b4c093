"""Partial labels: the marginal logits against an independent softmax, and a tiny network
that still learns a structure drawn on only half its training subjects."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sn_platform.evaluation.metrics import dice
from sn_platform.models.losses import DiceBCELoss, marginal_logits

SHAPE = (12, 12, 8)


def test_a_missing_class_joins_the_background_and_the_others_keep_their_probability():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, *SHAPE)
    annotated = torch.tensor([[True, True, True, True], [True, True, False, True]])
    marginal = marginal_logits(logits, annotated)
    expected = torch.softmax(logits, dim=1)
    got = torch.softmax(marginal, dim=1)
    torch.testing.assert_close(got[0], expected[0])  # fully annotated: unchanged
    torch.testing.assert_close(got[1, 0], expected[1, 0] + expected[1, 2])
    torch.testing.assert_close(got[1, [1, 3]], expected[1, [1, 3]])
    assert float(got[1, 2].max()) == 0.0
    # The marginal cross-entropy of a background voxel: -log(p_bg + p_RN).
    target = torch.zeros(2, *SHAPE, dtype=torch.long)
    by_hand = -torch.log(expected[1, 0] + expected[1, 2]).mean()
    torch.testing.assert_close(F.cross_entropy(marginal[1:], target[1:]), by_hand)


def test_fully_annotated_logits_are_returned_as_they_are_and_shapes_are_checked():
    logits = torch.randn(2, 3, *SHAPE)
    assert marginal_logits(logits, torch.ones(2, 3, dtype=torch.bool)) is logits
    with pytest.raises(ValueError, match="annotated must be"):
        marginal_logits(logits, torch.ones(2, 4, dtype=torch.bool))


def _cohort() -> tuple[torch.Tensor, torch.Tensor]:
    """Eight volumes: a bright block (class 1) and a brighter one (class 2) at random places,
    in noise; targets (8, 1, X, Y, Z) class indices."""
    generator = torch.Generator().manual_seed(3)
    images = 0.1 * torch.randn(8, 1, *SHAPE, generator=generator)
    targets = torch.zeros(8, 1, *SHAPE, dtype=torch.long)
    for n in range(8):
        for label, level in ((1, 1.0), (2, 2.0)):
            x, y = (int(v) for v in torch.randint(0, 8, (2,), generator=generator))
            z = 1 if label == 1 else 4
            images[n, 0, x : x + 4, y : y + 4, z : z + 3] += level
            targets[n, 0, x : x + 4, y : y + 4, z : z + 3] = label
    return images, targets


def _train(images: torch.Tensor, drawn: torch.Tensor, truth: torch.Tensor,
           annotated: torch.Tensor | None) -> float:  # fmt: skip
    """Class-2 Dice (probability above 0.5, as inference thresholds) against ``truth`` on
    the last 2 volumes after 60 Adam steps of a
    two-layer network on the first 6 with targets ``drawn``, marginal where ``annotated``
    (B, 3) is given."""
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv3d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv3d(8, 3, 1))
    optimiser = torch.optim.Adam(network.parameters(), lr=0.05)
    loss = DiceBCELoss()
    for _ in range(60):
        optimiser.zero_grad()
        logits = network(images[:6])
        if annotated is not None:
            logits = marginal_logits(logits, annotated[:6])
        loss(logits, drawn[:6]).backward()
        optimiser.step()
    with torch.no_grad():
        probability = torch.softmax(network(images[6:]), dim=1)[:, 2]
    return dice((probability > 0.5).numpy(), (truth[6:, 0] == 2).numpy())


def test_a_structure_drawn_on_half_the_subjects_is_still_learnt():
    images, truth = _cohort()
    drawn_on = torch.arange(8) % 2 == 1  # class 2 not drawn on every other volume
    drawn = truth.masked_fill((truth == 2) & ~drawn_on.view(-1, 1, 1, 1, 1), 0)
    annotated = torch.ones(8, 3, dtype=torch.bool)
    annotated[:, 2] = drawn_on
    full = _train(images, truth, truth, None)
    marginal = _train(images, drawn, truth, annotated)
    background = _train(images, drawn, truth, None)  # the undrawn taken for background
    assert full > 0.9
    assert marginal > full - 0.05, (marginal, full)
    assert marginal > background + 0.1, (marginal, background)
