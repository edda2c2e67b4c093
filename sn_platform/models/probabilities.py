"""The one rule from logits to class probabilities, shared by losses, inference and ensembles."""

from __future__ import annotations

import torch


def class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Probabilities of logits (B, C, X, Y, Z): the sigmoid of one channel (the foreground),
    else the softmax over the C classes."""
    if logits.shape[1] == 1:
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=1)
