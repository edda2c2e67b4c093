"""Losses: hand-computed values, empty masks, gradients against finite differences."""

from __future__ import annotations

import pytest
import torch

from sn_platform.models.losses import DiceBCELoss, DiceLoss, TverskyLoss

LOSSES = {
    "dice": DiceLoss(smooth=1e-5),
    "dice_milletari": DiceLoss(smooth=1e-5, squared=True),
    "dice_bce": DiceBCELoss(smooth=1e-5, bce_weight=0.0),
    "tversky": TverskyLoss(0.3, 0.7, smooth=1e-5),
    "focal_tversky": TverskyLoss(0.3, 0.7, gamma=0.75, smooth=1e-5),
}
BIG = 30.0  # logits that saturate the sigmoid


def _target() -> torch.Tensor:
    target = torch.zeros(2, 1, 6, 6, 3)
    target[:, :, 1:4, 2:5, :2] = 1
    return target


@pytest.mark.parametrize("name", LOSSES)
def test_perfect_prediction_is_zero_and_disjoint_is_one(name):
    target = _target()
    perfect = (target * 2 - 1) * BIG
    assert LOSSES[name](perfect, target).item() == pytest.approx(0.0, abs=1e-5)
    disjoint = -perfect
    assert LOSSES[name](disjoint, target).item() == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("reduction", ["batch", "sample"])
def test_empty_masks_are_finite(name, reduction):
    loss = type(LOSSES[name])(reduction=reduction) if name == "dice" else LOSSES[name]
    empty = torch.zeros(2, 1, 4, 4, 3)
    assert loss(torch.full_like(empty, -BIG), empty).item() == pytest.approx(0.0, abs=1e-4)
    assert torch.isfinite(loss(torch.zeros_like(empty), empty))


def test_soft_dice_and_tversky_by_hand():
    target = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 4, 1, 1)
    probabilities = torch.tensor([0.8, 0.4, 0.2, 0.0])
    logits = torch.logit(probabilities.clamp(1e-6, 1 - 1e-6)).view(1, 1, 4, 1, 1)
    tp, fp, fn = 1.2, 0.2, 0.8
    assert DiceLoss(smooth=0)(logits, target).item() == pytest.approx(
        1 - 2 * tp / (2 * tp + fp + fn), abs=1e-5
    )
    assert TverskyLoss(0.3, 0.7, smooth=0)(logits, target).item() == pytest.approx(
        1 - tp / (tp + 0.3 * fp + 0.7 * fn), abs=1e-5
    )
    squared = 1 - 2 * tp / (0.64 + 0.16 + 0.04 + 2.0)
    assert DiceLoss(smooth=0, squared=True)(logits, target).item() == pytest.approx(
        squared, abs=1e-5
    )


def test_batch_and_sample_reductions_differ_as_defined():
    target = torch.zeros(2, 1, 2, 1, 1)
    target[0, 0, 0] = 1
    target[1, 0, :] = 1
    probabilities = torch.tensor([[1.0, 0.0], [1.0, 0.0]]).view(2, 1, 2, 1, 1)
    logits = (probabilities * 2 - 1) * BIG
    per_sample = 1 - (1.0 + 2 / 3) / 2
    pooled = 1 - 2 * 2 / (2 * 2 + 0 + 1)
    assert DiceLoss(smooth=0, reduction="sample")(logits, target).item() == pytest.approx(
        per_sample, abs=1e-5
    )
    assert DiceLoss(smooth=0, reduction="batch")(logits, target).item() == pytest.approx(
        pooled, abs=1e-5
    )


def test_multiclass_with_index_target_equals_one_hot():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, 2)
    index = torch.randint(0, 3, (2, 1, 4, 4, 2))
    one_hot = torch.nn.functional.one_hot(index[:, 0], 3).movedim(-1, 1)
    assert DiceLoss()(logits, index).item() == pytest.approx(DiceLoss()(logits, one_hot).item())


@pytest.mark.parametrize("name", LOSSES)
def test_gradient_matches_finite_differences(name):
    torch.manual_seed(1)
    logits = torch.randn(1, 1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    target = (torch.rand(1, 1, 3, 2, 2) > 0.5).double()
    loss = type(LOSSES[name])() if name != "focal_tversky" else TverskyLoss(0.3, 0.7, gamma=1.5)
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (logits,), eps=1e-6, atol=1e-5)


def test_invalid_arguments_fail_early():
    for kwargs, message in (
        (dict(alpha=-1.0), "alpha and beta"),
        (dict(gamma=0.0), "gamma"),
        (dict(reduction="mean"), "reduction"),
        (dict(alpha=0.3, beta=0.7, squared=True), "squared"),
    ):
        with pytest.raises(ValueError, match=message):
            TverskyLoss(**kwargs)
