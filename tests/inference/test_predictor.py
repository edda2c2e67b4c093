"""Grid-sampled prediction and the return to the native grid, in world space."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest
import torch
import torchio as tio
from torch import nn

from sn_platform.data.orientation import reorient_from_ras
from sn_platform.inference.predictor import InferenceSettings, predict_array, to_native_grid

CPU = torch.device("cpu")


class FirstChannelLogit(nn.Module):
    """Logit = first input channel: the prediction is sigmoid(input), easy to check."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1]


@pytest.mark.parametrize("mode", ["average", "hann", "crop"])
def test_tiled_prediction_equals_the_voxelwise_model(mode):
    volume = torch.randn(2, 40, 36, 5)
    settings = InferenceSettings(patch_size=(16, 16, 5), patch_overlap=(4, 4, 0), overlap_mode=mode)
    probability = predict_array(FirstChannelLogit(), volume, settings, CPU)
    assert probability.shape == (1, 40, 36, 5)
    assert torch.allclose(probability, torch.sigmoid(volume[:1]), atol=1e-5)


def test_flip_tta_averages_the_mirrored_prediction():
    volume = torch.randn(1, 16, 16, 3)
    settings = InferenceSettings(patch_size=(16, 16, 3), patch_overlap=(0, 0, 0), flip_tta=True)
    probability = predict_array(FirstChannelLogit(), volume, settings, CPU)
    # A voxel-wise model is flip-equivariant: TTA changes nothing.
    assert torch.allclose(probability, torch.sigmoid(volume), atol=1e-6)


@pytest.mark.parametrize(
    "bad",
    [{"patch_overlap": (3, 0, 0)}, {"patch_overlap": (16, 0, 0)}, {"threshold": 1.0}],
)
def test_settings_refuse_invalid_values(bad):
    with pytest.raises(ValueError):
        InferenceSettings(**{"patch_size": (16, 16, 3), **bad})


def test_smaller_volume_than_patch_is_refused():
    with pytest.raises(ValueError, match="smaller than the patch"):
        predict_array(
            FirstChannelLogit(), torch.zeros(1, 8, 8, 3), InferenceSettings((16, 16, 3)), CPU
        )


@pytest.mark.parametrize("axcodes", ["RAS", "LAS", "PIR", "ILP"])
def test_native_grid_mapping_is_the_same_in_world_space(axcodes):
    """A block predicted in RAS lands on the same world coordinates in any storage order."""
    shape = (20, 18, 6)
    ras_affine = np.diag([0.5, 0.5, 1.0, 1.0])
    ras_affine[:3, 3] = (-5.0, -4.5, -3.0)
    probability = torch.zeros(1, *shape)
    probability[0, 4:9, 6:12, 2:4] = 0.9
    native_affine, reorient = reorient_from_ras(ras_affine, shape, axcodes)
    native_shape = reorient(np.zeros(shape)).shape
    prediction = to_native_grid(probability, ras_affine, native_shape, native_affine)
    expected = reorient(probability[0].numpy())
    assert nib.aff2axcodes(native_affine) == tuple(axcodes)
    np.testing.assert_allclose(prediction.probability("SN"), expected, atol=1e-5)
    assert prediction.field_of_view.all()


def test_native_voxels_outside_the_network_volume_get_zero_and_no_field_of_view():
    """A 3-slice slab mapped back onto a 10-slice native volume covers its 3 slices only."""
    native_affine = np.diag([0.5, 0.5, 1.0, 1.0])
    slab_affine = native_affine.copy()
    slab_affine[2, 3] = 4.0  # slices 4, 5, 6 of the native volume
    prediction = to_native_grid(torch.ones(1, 8, 8, 3), slab_affine, (8, 8, 10), native_affine)
    covered = np.flatnonzero(prediction.field_of_view.any(axis=(0, 1)))
    assert covered.tolist() == [4, 5, 6]
    assert prediction.probability()[..., [0, 3, 7, 9]].max() == 0.0
    assert prediction.mask(0.5).sum() == 8 * 8 * 3


class ScaledLogit(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x[:, :1]


def test_ensemble_is_the_mean_of_its_members_on_the_native_grid(phantom_cohort):
    from sn_platform.data.bids import discover_subjects
    from sn_platform.data.preprocessing import PreprocessingSpec
    from sn_platform.inference.batch import predict_ensemble
    from sn_platform.inference.predictor import Segmenter

    root, _ = phantom_cohort
    (record,) = discover_subjects(root, subjects=[discover_subjects(root)[0].participant_id])
    settings = InferenceSettings(patch_size=(32, 32, 3), patch_overlap=(8, 8, 0), flip_tta=True)
    spec = PreprocessingSpec(min_shape=(32, 32, 3))
    members = [Segmenter(ScaledLogit(s), spec, settings, CPU) for s in (0.5, 2.0)]
    ensemble = predict_ensemble(members, record)
    single = [m.predict(record) for m in members]
    np.testing.assert_allclose(
        ensemble.probabilities, (single[0].probabilities + single[1].probabilities) / 2, atol=1e-6
    )
    assert ensemble.probabilities.shape == (1, *nib.load(record.grid_image).shape)
    assert 0.99 <= ensemble.tta_dice <= 1.0  # a voxel-wise model is flip-equivariant
    assert ensemble.field_of_view.all()  # the whole field of view; the slab comes later


class ThreeLabelLogits(nn.Module):
    """Softmax logits over background, SN, RN and CC: background 0, SN = the first channel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zero = torch.zeros_like(x[:, :1])
        return torch.cat([zero, x[:, :1], zero - 9, zero - 9], dim=1)


def test_a_multi_structure_network_gives_one_probability_per_label():
    volume = torch.randn(1, 16, 16, 4)
    settings = InferenceSettings(labels=("SN", "RN", "CC"), patch_size=(16, 16, 4),
                                 patch_overlap=(0, 0, 0))  # fmt: skip
    probabilities = predict_array(ThreeLabelLogits(), volume, settings, CPU)
    assert probabilities.shape == (3, 16, 16, 4)
    expected = torch.exp(volume[0]) / (1 + torch.exp(volume[0]) + 2 * math.exp(-9))
    assert torch.allclose(probabilities[0], expected, atol=1e-5)
    assert probabilities[1:].max() < 1e-3 and (probabilities.sum(0) < 1).all()  # background


def test_native_resampling_of_a_box_equals_resampling_the_whole_grid():
    # A 6 x 5 x 4 box inside a permuted, flipped (PIR-like) native grid of 20 x 18 x 16.
    native_affine = np.array(
        [[0, 0, -0.6, 6.0], [-0.5, 0, 0, 5.0], [0, -1.0, 0, 8.0], [0, 0, 0, 1]], dtype=float
    )
    box_affine = np.diag([0.5, 0.6, 1.0, 1.0])
    box_affine[:3, 3] = [-1.0, -2.0, -1.5]
    probability = torch.rand(2, 6, 5, 4, generator=torch.Generator().manual_seed(0))
    prediction = to_native_grid(probability, box_affine, (20, 18, 16), native_affine)
    subject = tio.Subject(
        p=tio.ScalarImage(tensor=probability, affine=box_affine),
        f=tio.LabelMap(tensor=torch.ones(1, 6, 5, 4, dtype=torch.uint8), affine=box_affine),
    )
    whole = tio.Resample(((20, 18, 16), native_affine))(subject)
    inside = whole["f"].data[0].numpy().astype(bool)
    assert inside.any() and not inside.all()
    np.testing.assert_array_equal(prediction.field_of_view, inside)
    expected = whole["p"].data.numpy().clip(0, 1) * inside
    np.testing.assert_allclose(prediction.probabilities, expected, atol=1e-6)


def test_a_saved_model_s_slab_in_slices_reads_as_millimetres_of_the_method():
    old = {**InferenceSettings().to_dict(), "slab_slices": 4}
    del old["slab_mm"]
    assert InferenceSettings.from_dict(old).slab_mm == 4.0
