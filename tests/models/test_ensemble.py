"""The probability-averaging ensemble."""

from __future__ import annotations

import math

import pytest
import torch

from sn_platform.models.ensemble import ProbabilityEnsemble
from sn_platform.models.factory import build_module

CONSTANT = {"_target_": "torch.nn.Conv3d", "in_channels": 1, "out_channels": 1, "kernel_size": 1}


def _ensemble(biases: list[float]) -> ProbabilityEnsemble:
    ensemble = ProbabilityEnsemble(CONSTANT, len(biases))
    for member, bias in zip(ensemble.members, biases, strict=True):
        torch.nn.init.zeros_(member.weight)
        torch.nn.init.constant_(member.bias, bias)
    return ensemble


def test_output_is_the_logit_of_the_mean_probability():
    with torch.no_grad():
        logits = _ensemble([0.0, math.log(3.0)])(torch.zeros(1, 1, 2, 2, 2))
    # sigmoid(0) = 0.5 and sigmoid(log 3) = 0.75: mean 0.625.
    assert torch.allclose(torch.sigmoid(logits), torch.full((1, 1, 2, 2, 2), 0.625), atol=1e-6)


def test_one_member_is_the_member_itself():
    x = torch.randn(1, 1, 3, 3, 3)
    ensemble = _ensemble([0.3])
    assert torch.allclose(ensemble(x), ensemble.members[0](x), atol=1e-5)


def test_build_module_and_empty_ensemble():
    assert isinstance(build_module(CONSTANT), torch.nn.Conv3d)
    with pytest.raises(ValueError, match="at least one member"):
        ProbabilityEnsemble(CONSTANT, 0)
