"""The network as a plain ``torch.export`` program, for users outside MLflow and this package.

``torch.export.load("network.pt2").module()(patches)`` maps preprocessed patches
(B, C, X, Y, Z) float32, ``(X, Y, Z)`` the training patch size and ``B`` any batch size, to
the probabilities of the model's labels (B, K, X, Y, Z), K = its ``labels`` (SN, RN, CC);
no ``sn_platform`` import is needed to run it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from sn_platform.inference.predictor import label_probabilities

MAX_BATCH = 1024


class ProbabilityNetwork(nn.Module):
    """A segmentation network followed by the logits -> label probabilities rule."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return label_probabilities(self.network(patches))


def export_network(
    network: nn.Module, channels: int, patch_size: Sequence[int], path: Path
) -> torch.export.ExportedProgram:
    """Export a copy of ``network`` (CPU, evaluation mode) with a dynamic batch size to
    ``path`` (``.pt2``); returns the program."""
    wrapper = ProbabilityNetwork(copy.deepcopy(network).cpu().eval()).eval()
    # A batch of 2: torch.export specialises sizes 0 and 1.
    example = torch.zeros(2, channels, *patch_size)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        program = torch.export.export(wrapper, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, Path(path))
    return program
