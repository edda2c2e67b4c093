"""Segmentation losses on logits: Dice (soft and Milletari's), Dice + BCE, Tversky, focal Tversky.

All take logits (B, C, X, Y, Z) and a target of the same shape (binary or one-hot) or
(B, 1, X, Y, Z) class indices when C > 1. One channel means a sigmoid; several channels
a softmax. Every loss has a smoothing term so empty masks give a finite value (0 when
the prediction is empty too) and ``reduction`` ``batch`` (one score over the whole batch,
nnU-Net's batch Dice) or ``sample`` (the mean of per-sample scores).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sn_platform.models.probabilities import class_probabilities

REDUCTIONS = ("batch", "sample")
# A logit no class reaches in float32: exp() of it is 0, and so is its gradient.
EXCLUDED_LOGIT = -1.0e4


def marginal_logits(logits: torch.Tensor, annotated: torch.Tensor) -> torch.Tensor:
    """Logits (B, C, X, Y, Z) under which the classes a sample lacks join its background:
    the marginal loss of partially labelled data (Shi et al. 2021, MedIA 70:101979).

    ``annotated`` (B, C) bool marks, per sample, the background and each label drawn. For
    a sample without, say, the RN, the background's logit becomes the log-sum-exp of the
    background's and the RN's (a softmax gives it p_bg + p_RN) and the RN's is excluded
    (p 0): any loss on the result neither rewards nor penalises the RN where it was not
    drawn. Fully annotated samples keep their logits.
    """
    if annotated.shape != logits.shape[:2]:
        raise ValueError(
            f"annotated must be (B, C) = {tuple(logits.shape[:2])}, got {tuple(annotated.shape)}"
        )
    missing = ~annotated.to(device=logits.device, dtype=torch.bool)
    if not bool(missing.any()):
        return logits
    spatial = (1,) * (logits.ndim - 2)
    merging = missing.clone()
    merging[:, 0] = True  # the background and the classes the sample lacks
    merged = logits.masked_fill(~merging.view(*merging.shape, *spatial), EXCLUDED_LOGIT)
    background = torch.logsumexp(merged, dim=1, keepdim=True)
    labels = logits[:, 1:].masked_fill(missing[:, 1:].view(*missing[:, 1:].shape, *spatial),
                                       EXCLUDED_LOGIT)  # fmt: skip
    return torch.cat([background, labels], dim=1)


def probabilities_and_target(
    logits: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities and a float target of the same shape (B, C, X, Y, Z)."""
    if logits.ndim != 5:
        raise ValueError(f"logits must be (B, C, X, Y, Z), got shape {tuple(logits.shape)}")
    probabilities = class_probabilities(logits)
    if target.shape[1] == 1 and logits.shape[1] > 1:
        target = F.one_hot(target[:, 0].long(), logits.shape[1]).movedim(-1, 1)
    return probabilities, target.to(logits.dtype)


class TverskyLoss(nn.Module):
    """``1 - (TP + s) / (TP + alpha FP + beta FN + s)``, optionally raised to ``gamma``.

    ``alpha = beta = 0.5`` is the soft Dice loss; ``squared=True`` replaces the Dice
    denominator by sums of squares (Milletari et al. 2016). ``gamma`` < 1 gives the focal
    Tversky loss (Abraham and Khan 2019), which emphasises hard, small structures.

    Parameters
    ----------
    alpha, beta : weights of false positives and false negatives
    gamma : focal exponent (1 for none)
    smooth : smoothing term added to numerator and denominator
    reduction : ``batch`` or ``sample``
    include_background : with C > 1 channels, whether channel 0 counts
    squared : Milletari's squared denominators (only with alpha = beta = 0.5)
    """

    def __init__(
        self,
        alpha: float = 0.5,
        beta: float = 0.5,
        gamma: float = 1.0,
        smooth: float = 1.0,
        reduction: str = "batch",
        include_background: bool = False,
        squared: bool = False,
    ):
        super().__init__()
        if alpha < 0 or beta < 0 or alpha + beta <= 0:
            raise ValueError(
                f"alpha and beta must be >= 0 with a positive sum, got {alpha}, {beta}"
            )
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        if smooth < 0:
            raise ValueError(f"smooth must be >= 0, got {smooth}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if squared and alpha != beta:
            raise ValueError(
                "squared denominators are defined for the Dice case alpha == beta only"
            )
        self.alpha, self.beta, self.gamma, self.smooth = alpha, beta, gamma, smooth
        self.reduction = reduction
        self.include_background = include_background
        self.squared = squared

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss for logits and target (B, C, X, Y, Z)."""
        probabilities, target = probabilities_and_target(logits, target)
        if probabilities.shape[1] > 1 and not self.include_background:
            probabilities, target = probabilities[:, 1:], target[:, 1:]
        axes = (0, 2, 3, 4) if self.reduction == "batch" else (2, 3, 4)
        tp = (probabilities * target).sum(axes)
        if self.squared:
            denominator = 0.5 * ((probabilities**2).sum(axes) + (target**2).sum(axes))
        else:
            fp = (probabilities * (1 - target)).sum(axes)
            fn = ((1 - probabilities) * target).sum(axes)
            denominator = tp + self.alpha * fp + self.beta * fn
        index = (tp + self.smooth) / (denominator + self.smooth)
        return ((1.0 - index).clamp_min(0.0) ** self.gamma).mean()


class DiceLoss(TverskyLoss):
    """Soft Dice loss; ``squared=True`` for Milletari's V-Net Dice."""

    def __init__(
        self,
        smooth: float = 1.0,
        reduction: str = "batch",
        include_background: bool = False,
        squared: bool = False,
    ):
        super().__init__(
            smooth=smooth,
            reduction=reduction,
            include_background=include_background,
            squared=squared,
        )


class DiceBCELoss(nn.Module):
    """Soft Dice plus (binary) cross-entropy, weighted: ``dice + bce_weight * ce``."""

    def __init__(self, bce_weight: float = 1.0, smooth: float = 1.0, reduction: str = "batch"):
        super().__init__()
        if bce_weight < 0:
            raise ValueError(f"bce_weight must be >= 0, got {bce_weight}")
        self.dice = DiceLoss(smooth=smooth, reduction=reduction)
        self.bce_weight = bce_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss for logits and target (B, C, X, Y, Z)."""
        if logits.shape[1] == 1:
            cross_entropy = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
        else:
            _, one_hot = probabilities_and_target(logits, target)
            cross_entropy = F.cross_entropy(logits, one_hot.argmax(1))
        return self.dice(logits, target) + self.bce_weight * cross_entropy
