"""V-Net (Milletari et al., 2016) with anisotropic strides for thin slabs.

Residual stages of 1-3 convolutions, strided-convolution down-sampling that doubles the
channels, transposed-convolution up-sampling, skip concatenation and PReLU. Down-sampling
along an axis stops once that axis would fall below ``min_size`` (nnU-Net's rule), so the
method's 3-slice slab is never down-sampled along z. Any input size works: the input is
padded to a multiple of the total stride and the output cropped back.

Parameter counts (3 input channels, 1 output, patch (64, 64, 3)):
``vnet_small`` 100,649; ``vnet_paper`` 2,356,625; ``vnet_milletari`` 43,603,601.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from sn_platform.models.blocks import ResidualStage, make_activation, make_norm


def anisotropic_strides(
    patch_size: Sequence[int], depth: int, min_size: int = 4
) -> list[tuple[int, int, int]]:
    """Stride per down-sampling step: 2 along an axis while it stays >= ``min_size``, else 1.

    Parameters
    ----------
    patch_size : (X, Y, Z) training patch size (voxels)
    depth : number of resolution stages (depth - 1 down-samplings)
    min_size : smallest size an axis is down-sampled to
    """
    sizes = list(patch_size)
    strides = []
    for _ in range(depth - 1):
        step = tuple(2 if size // 2 >= min_size else 1 for size in sizes)
        sizes = [size // s for size, s in zip(sizes, step, strict=True)]
        strides.append((step[0], step[1], step[2]))
    return strides


class VNet(nn.Module):
    """3D V-Net returning logits (B, out_channels, X, Y, Z) for input (B, in_channels, X, Y, Z).

    The channels follow from the data and have no default; the architecture's settings are
    keywords.

    Parameters
    ----------
    in_channels : input channels (echo magnitudes)
    out_channels : 1 for a binary SN mask (sigmoid), C for C classes (softmax)
    depth : resolution stages, 3-5 (the method: 4; Milletari: 5)
    base_filters : channels of the first stage, doubled at each down-sampling
    kernel_size : 3 (the method) or 5 (Milletari)
    convs_per_stage : convolutions per stage, one int for all or one per stage
    norm : none, batch, instance or group
    activation : prelu, relu, leaky_relu or elu
    dropout : Dropout3d probability in the two deepest stages
    patch_size : training patch size, from which the anisotropic strides follow
    min_size : smallest size an axis is down-sampled to
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        depth: int = 4,
        base_filters: int = 16,
        kernel_size: int = 3,
        convs_per_stage: int | Sequence[int] = (1, 2, 3, 3, 3),
        norm: str = "instance",
        activation: str = "prelu",
        dropout: float = 0.0,
        patch_size: Sequence[int] = (64, 64, 3),
        min_size: int = 4,
    ):
        super().__init__()
        if not 3 <= depth <= 5:
            raise ValueError(f"depth must be 3, 4 or 5 stages, got {depth}")
        if kernel_size not in (3, 5):
            raise ValueError(f"kernel_size must be 3 or 5, got {kernel_size}")
        if in_channels < 1 or out_channels < 1 or base_filters < 1:
            raise ValueError("in_channels, out_channels and base_filters must be positive")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if len(patch_size) != 3 or min(patch_size) < 1:
            raise ValueError(f"patch_size must be three positive sizes, got {list(patch_size)}")
        convs = (
            [convs_per_stage] * depth if isinstance(convs_per_stage, int) else list(convs_per_stage)
        )
        if len(convs) < depth or min(convs[:depth]) < 1:
            raise ValueError(
                f"convs_per_stage needs {depth} positive counts, got {convs_per_stage}"
            )
        make_norm(norm, 1)  # validates the name early
        make_activation(activation, 1)

        self.strides = anisotropic_strides(patch_size, depth, min_size)
        channels = [base_filters * 2**level for level in range(depth)]
        stage = partial(ResidualStage, kernel_size=kernel_size, norm=norm, activation=activation)
        self.input_stage = stage(in_channels, channels[0], convs[0])
        self.down = nn.ModuleList()
        self.encoder = nn.ModuleList()
        for level in range(1, depth):
            stride = self.strides[level - 1]
            self.down.append(
                nn.Sequential(
                    nn.Conv3d(
                        channels[level - 1], channels[level], kernel_size=stride, stride=stride
                    ),
                    make_norm(norm, channels[level]),
                    make_activation(activation, channels[level]),
                )
            )
            drop = dropout if level >= depth - 2 else 0.0
            self.encoder.append(stage(channels[level], channels[level], convs[level], dropout=drop))
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level in range(depth - 1, 0, -1):
            stride = self.strides[level - 1]
            self.up.append(
                nn.Sequential(
                    nn.ConvTranspose3d(
                        channels[level], channels[level - 1], kernel_size=stride, stride=stride
                    ),
                    make_norm(norm, channels[level - 1]),
                    make_activation(activation, channels[level - 1]),
                )
            )
            self.decoder.append(
                stage(2 * channels[level - 1], channels[level - 1], convs[level - 1])
            )
        self.head = nn.Conv3d(channels[0], out_channels, kernel_size=1)

    @property
    def total_stride(self) -> tuple[int, int, int]:
        """Product of the strides per axis: inputs are padded to a multiple of it."""
        total = [1, 1, 1]
        for stride in self.strides:
            total = [t * s for t, s in zip(total, stride, strict=True)]
        return (total[0], total[1], total[2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, out_channels, X, Y, Z) for input (B, in_channels, X, Y, Z)."""
        size = x.shape[-3:]
        padding: list[int] = []
        for length, multiple in zip(reversed(size), reversed(self.total_stride), strict=True):
            padding += [0, -length % multiple]
        x = F.pad(x, padding)
        skips = [self.input_stage(x)]
        for down, stage in zip(self.down, self.encoder, strict=True):
            skips.append(stage(down(skips[-1])))
        y = skips.pop()
        for up, stage in zip(self.up, self.decoder, strict=True):
            y = stage(torch.cat([up(y), skips.pop()], dim=1))
        logits = self.head(y)
        return logits[..., : size[0], : size[1], : size[2]]
