"""The cascade on constructed subjects with known answers: a localiser finds a bright
structure, the segmenter's box is centred on it, and a subject where nothing is found gets
the volume's centre and a QC flag."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from sn_platform.data.bids import SubjectRecord
from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.inference.predictor import InferenceSettings, Segmenter, preprocess_record

SHAPE = (40, 40, 8)
AFFINE = np.array(
    [[0.5, 0, 0, -10.0], [0, 0.5, 0, -10.0], [0, 0, 1.0, -4.0], [0, 0, 0, 1]], dtype=float
)
BLOB = (slice(26, 30), slice(10, 14), slice(3, 6))  # centroid voxel (27.5, 11.5, 4)
BLOB_CENTRE_MM = AFFINE[:3, :3] @ np.array([27.5, 11.5, 4.0]) + AFFINE[:3, 3]
BOX_SPEC = PreprocessingSpec(spacing_mm=None, min_shape=(8, 8, 4), roi_mm=(8.0, 8.0, 100.0))
SETTINGS = InferenceSettings(patch_size=(8, 8, 4), patch_overlap=(0, 0, 0), batch_size=8)


def _record(folder: Path, blob: bool) -> SubjectRecord:
    """Three echoes of 1 +/- 1 % noise; with ``blob`` a bright 2 x 2 x 3 mm block in each."""
    folder.mkdir(parents=True, exist_ok=True)
    data = (1 + 0.01 * np.random.default_rng(0).random(SHAPE)).astype(np.float32)
    if blob:
        data[BLOB] = 10.0
    channels = {f"echo-{echo}": folder / f"echo-{echo}.nii.gz" for echo in (1, 2, 3)}
    for path in channels.values():
        nib.save(nib.Nifti1Image(data, AFFINE), path)
    return SubjectRecord("01", channels)


def _bright_spot_localiser() -> Segmenter:
    """A 1x1x1 convolution whose probability exceeds 0.5 where echo 1's z-score exceeds 3:
    never in uniform noise (|z| <= sqrt(3)), always in the block."""
    model = torch.nn.Conv3d(3, 1, kernel_size=1)
    with torch.no_grad():
        model.weight.zero_()
        model.weight[0, 0] = 1.0
        model.bias.fill_(-3.0)
    spec = PreprocessingSpec(spacing_mm=None, min_shape=(8, 8, 4))
    return Segmenter(model.eval(), spec, SETTINGS, torch.device("cpu"))


def _box_centre(subject) -> np.ndarray:
    image = subject.get_first_image()
    middle = (np.array(image.spatial_shape) - 1) / 2
    return image.affine[:3, :3] @ middle + image.affine[:3, 3]


def test_localiser_finds_the_bright_structure(tmp_path):
    centre = _bright_spot_localiser().locate(_record(tmp_path, blob=True))
    np.testing.assert_allclose(centre, BLOB_CENTRE_MM)
    assert _bright_spot_localiser().locate(_record(tmp_path / "flat", blob=False)) is None


def test_the_box_is_centred_on_what_the_localiser_found(tmp_path):
    subject = preprocess_record(_record(tmp_path, True), BOX_SPEC, _bright_spot_localiser())
    assert subject["roi_source"] == "localiser"
    assert subject.get_first_image().spatial_shape == (16, 16, 8)  # 8 x 8 mm, every slice
    # An even box has no middle voxel: its centre is within half a voxel of the blob's.
    offset = np.abs(_box_centre(subject) - BLOB_CENTRE_MM)
    assert (offset <= [0.25, 0.25, 0.5]).all()


def test_nothing_found_puts_the_box_at_the_volume_centre(tmp_path):
    subject = preprocess_record(_record(tmp_path, False), BOX_SPEC, _bright_spot_localiser())
    assert subject["roi_source"] == "centre"
    volume_centre = AFFINE[:3, :3] @ ((np.array(SHAPE) - 1) / 2) + AFFINE[:3, 3]
    np.testing.assert_allclose(_box_centre(subject), volume_centre, atol=0.5)


@pytest.mark.parametrize(
    ("spec", "centre", "source"),
    [
        (PreprocessingSpec(spacing_mm=None, min_shape=(8, 8, 4)), None, "whole"),
        (BOX_SPEC, np.array([0.0, 0.0, 0.0]), "given"),
        (BOX_SPEC, None, "centre"),
    ],
)
def test_roi_source_says_where_the_box_came_from(tmp_path, spec, centre, source):
    subject = preprocess_record(_record(tmp_path, True), spec, None, centre)
    assert subject["roi_source"] == source


def test_cascade_predicts_inside_its_box_only(tmp_path):
    record = _record(tmp_path, True)
    localiser = _bright_spot_localiser()
    segmenter = Segmenter(localiser.model, BOX_SPEC, SETTINGS, torch.device("cpu"),
                          localiser=localiser)  # fmt: skip
    prediction = segmenter.predict(record)
    assert prediction.roi_source == "localiser"
    assert prediction.field_of_view.sum() == 16 * 16 * 8
    assert prediction.mask(0.5)[BLOB].all()  # the bright block, seen inside the box
    assert prediction.mask(0.5).sum() == 4 * 4 * 3
