"""V-Net: shapes for thin slabs and odd sizes, anisotropic strides, a 50-step overfit."""

from __future__ import annotations

import pytest
import torch

from sn_platform.evaluation.metrics import dice
from sn_platform.models.losses import DiceLoss
from sn_platform.models.vnet import VNet, anisotropic_strides

PRESETS = {
    "vnet_small": dict(depth=3, base_filters=8, kernel_size=3, convs_per_stage=[1, 2, 2]),
    "vnet_paper": dict(depth=4, base_filters=16, kernel_size=3, convs_per_stage=[1, 2, 3, 3]),
    "vnet_milletari": dict(
        depth=5, base_filters=16, kernel_size=5, convs_per_stage=[1, 2, 3, 3, 3], norm="none"
    ),
}
PARAMETERS_AT_DEFAULT_PATCH = {
    "vnet_small": 100_649,
    "vnet_paper": 2_356_625,
    "vnet_milletari": 43_603_601,
}


@pytest.mark.parametrize(
    ("patch", "depth", "expected"),
    [
        ((64, 64, 3), 4, [(2, 2, 1)] * 3),
        ((64, 64, 8), 4, [(2, 2, 2), (2, 2, 1), (2, 2, 1)]),
        ((64, 64, 16), 5, [(2, 2, 2), (2, 2, 2), (2, 2, 1), (2, 2, 1)]),
        ((12, 64, 3), 3, [(2, 2, 1), (1, 2, 1)]),
    ],
)
def test_strides_stop_when_an_axis_is_small(patch, depth, expected):
    assert anisotropic_strides(patch, depth) == expected


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("slices", [3, 8, 16])
def test_forward_backward_keeps_the_input_shape(preset, slices):
    torch.manual_seed(0)
    model = VNet(in_channels=3, out_channels=1, patch_size=(33, 35, slices), **PRESETS[preset])
    x = torch.randn(2, 3, 33, 35, slices, requires_grad=True)
    y = model(x)
    assert y.shape == (2, 1, 33, 35, slices)
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("preset", PRESETS)
def test_parameter_counts_at_the_default_patch(preset):
    model = VNet(in_channels=3, out_channels=1, patch_size=(64, 64, 3), **PRESETS[preset])
    count = sum(p.numel() for p in model.parameters())
    print(f"{preset}: {count:,} parameters")
    assert count == PARAMETERS_AT_DEFAULT_PATCH[preset]


def test_multiclass_output_and_argument_checks():
    network = VNet(in_channels=3, out_channels=3, depth=3, base_filters=4)
    assert network(torch.randn(1, 3, 16, 16, 3)).shape == (1, 3, 16, 16, 3)
    for bad in (
        dict(depth=6),
        dict(kernel_size=4),
        dict(norm="layer"),
        dict(activation="gelu"),
        dict(dropout=1.0),
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            VNet(3, 1, **bad)


def test_vnet_small_overfits_one_volume():
    torch.manual_seed(0)
    label = torch.zeros(1, 1, 32, 32, 8)
    label[..., 10:18, 8:14, 2:6] = 1  # an SN-like bar
    label[..., 18:22, 12:20, 3:6] = 1
    x = torch.randn(1, 3, 32, 32, 8) * 0.3 + label * torch.tensor([1.0, 0.4, -0.3]).view(
        1, 3, 1, 1, 1
    )
    model = VNet(in_channels=3, out_channels=1, patch_size=(32, 32, 8), **PRESETS["vnet_small"])
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = DiceLoss()
    for _ in range(50):
        optimiser.zero_grad()
        loss = loss_fn(model(x), label)
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        prediction = model(x) > 0
    assert dice(prediction.numpy(), label.numpy()) > 0.9
