"""Several trained networks as one: the mean of their SN probabilities."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from sn_platform.models.factory import build_module
from sn_platform.models.probabilities import class_probabilities

EPSILON = 1e-6


class ProbabilityEnsemble(nn.Module):
    """``count`` copies of the network ``member`` whose probabilities are averaged.

    The output is a logit again (one channel: the logit of the mean sigmoid; several
    channels: the log of the mean softmax), so losses, inference and the logged model
    treat the ensemble like any single network. Input (B, C, X, Y, Z).
    """

    def __init__(self, member: Mapping[str, Any], count: int):
        super().__init__()
        if count < 1:
            raise ValueError(f"an ensemble needs at least one member, got {count}")
        self.members = nn.ModuleList(build_module(member) for _ in range(count))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = [member(x) for member in self.members]
        mean = torch.stack([class_probabilities(v) for v in logits]).mean(dim=0)
        if mean.shape[1] == 1:
            return torch.logit(mean.clamp(EPSILON, 1 - EPSILON))
        return torch.log(mean.clamp_min(EPSILON))
