"""Building blocks of the V-Net: normalisation, activation, residual convolution stages."""

from __future__ import annotations

import torch
from torch import nn

NORMS = ("none", "batch", "instance", "group")
ACTIVATIONS = ("prelu", "relu", "leaky_relu", "elu")


def make_norm(name: str, channels: int) -> nn.Module:
    """Normalisation layer by name: none, batch, instance (affine) or group (8 groups max)."""
    if name == "none":
        return nn.Identity()
    if name == "batch":
        return nn.BatchNorm3d(channels)
    if name == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if name == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"unknown norm {name!r}; choose from {NORMS}")


def make_activation(name: str, channels: int) -> nn.Module:
    """Activation by name; PReLU learns one slope per channel, as in V-Net."""
    if name == "prelu":
        return nn.PReLU(channels)
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01, inplace=True)
    if name == "elu":
        return nn.ELU(inplace=True)
    raise ValueError(f"unknown activation {name!r}; choose from {ACTIVATIONS}")


class ResidualStage(nn.Module):
    """``n_convs`` convolutions with a residual connection: ``act(convs(x) + skip(x))``.

    ``skip`` is the identity when the channel counts match, a 1x1x1 convolution otherwise.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_convs: int,
        kernel_size: int = 3,
        norm: str = "instance",
        activation: str = "prelu",
        dropout: float = 0.0,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for index in range(n_convs):
            layers += [
                nn.Conv3d(channels, out_channels, kernel_size, padding=kernel_size // 2),
                make_norm(norm, out_channels),
            ]
            if index < n_convs - 1:
                layers.append(make_activation(activation, out_channels))
            channels = out_channels
        if dropout > 0:
            layers.append(nn.Dropout3d(dropout))
        self.convs = nn.Sequential(*layers)
        self.skip = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Conv3d(in_channels, out_channels, 1)
        )
        self.activation = make_activation(activation, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, X, Y, Z) -> (B, out_channels, X, Y, Z)."""
        return self.activation(self.convs(x) + self.skip(x))
