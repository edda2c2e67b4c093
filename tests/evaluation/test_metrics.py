"""Metrics on constructed masks with known answers, cross-checked against MONAI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sn_platform.evaluation import metrics
from sn_platform.evaluation.metrics import (
    dice,
    hausdorff_95_mm,
    hemisphere_volumes_mm3,
    per_slice_dice,
    slices_in_agreement,
    volume_mm3,
)


def _cube(shape, start, size) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[tuple(slice(s, s + size) for s in start)] = True
    return mask


def _sphere(shape, centre, radius) -> np.ndarray:
    grid = np.indices(shape)
    return ((grid - np.array(centre).reshape(3, 1, 1, 1)) ** 2).sum(0) <= radius**2


def test_offset_cubes_have_analytic_overlap():
    a = _cube((20, 20, 20), (2, 2, 2), 10)
    b = _cube((20, 20, 20), (4, 2, 2), 10)  # shifted by 2 voxels along x
    assert dice(a, b) == pytest.approx(2 * 800 / 2000)
    assert volume_mm3(a, (0.5, 0.5, 1.0)) == pytest.approx(250.0)
    # Faces perpendicular to the shift are 2 voxels = 1 mm apart at 0.5 mm spacing.
    assert hausdorff_95_mm(a, b, (0.5, 1.0, 1.0)) == pytest.approx(1.0)


def test_concentric_spheres_are_their_radius_difference_apart():
    inner, outer = _sphere((40, 40, 40), (20, 20, 20), 8), _sphere((40, 40, 40), (20, 20, 20), 12)
    assert hausdorff_95_mm(inner, outer, (2, 2, 2)) == pytest.approx(8.0, abs=1.0)
    assert dice(inner, outer) == pytest.approx(2 * 8**3 / (8**3 + 12**3), rel=0.05)


def test_empty_masks():
    empty = np.zeros((5, 5, 5), bool)
    full = _cube((5, 5, 5), (1, 1, 1), 2)
    assert np.isnan(dice(empty, empty)) and dice(full, empty) == 0.0
    assert np.isnan(hausdorff_95_mm(full, empty, (1, 1, 1)))
    with pytest.raises(ValueError, match="shape"):
        dice(full, full[:4])


def test_hemisphere_volumes_in_world_space():
    mask = np.zeros((20, 4, 4), bool)
    mask[2:5, 1:3, 1:3] = True  # 12 voxels left of the centre
    mask[13:17, 1:3, 1:3] = True  # 16 voxels right of it
    affine = np.diag([0.5, 0.5, 1.0, 1.0])
    affine[0, 3] = -5.0
    left, right = hemisphere_volumes_mm3(mask, affine, midline_mm=0.0)
    assert (left, right) == (pytest.approx(12 * 0.25), pytest.approx(16 * 0.25))
    flipped = affine.copy()
    flipped[0, 0], flipped[0, 3] = -0.5, 4.5  # the same voxels stored in LAS order
    assert hemisphere_volumes_mm3(mask[::-1], flipped, midline_mm=0.0) == (left, right)


def test_slices_in_agreement():
    reference = np.zeros((6, 6, 4), bool)
    reference[1:5, 1:5, :3] = True
    prediction = reference.copy()
    prediction[:, :, 1] = False  # slice 1 missed
    prediction[1:3, 1:5, 2] = False  # half of slice 2: Dice 2/3
    assert np.allclose(per_slice_dice(prediction, reference)[:3], [1.0, 0.0, 2 / 3])
    assert np.isnan(per_slice_dice(prediction, reference)[3])
    assert slices_in_agreement(prediction, reference, slices=[0, 1, 2], threshold=0.5) == 2
    assert slices_in_agreement(prediction, reference, threshold=0.7) == 1


@pytest.mark.parametrize("seed", range(3))
def test_against_monai(seed):
    from monai.metrics import compute_dice, compute_hausdorff_distance

    rng = np.random.default_rng(seed)
    base = _sphere((24, 22, 10), (12, 11, 5), 5)
    noisy = [np.logical_xor(base, rng.random(base.shape) < 0.05) for _ in range(2)]
    spacing = (0.5, 0.6, 1.0)
    as_tensor = [torch.from_numpy(m[None, None].astype(np.float32)) for m in noisy]
    monai_dice = compute_dice(*as_tensor).item()
    monai_hd95 = compute_hausdorff_distance(*as_tensor, percentile=95, spacing=spacing).item()
    assert dice(*noisy) == pytest.approx(monai_dice, rel=1e-6)
    assert hausdorff_95_mm(*noisy, spacing) == pytest.approx(monai_hd95, abs=max(spacing))


def test_bounding_box_holds_every_mask_with_its_margin():
    first, second = np.zeros((10, 12, 8), bool), np.zeros((10, 12, 8), bool)
    first[2:4, 5, 0] = True
    second[7, 11, 3:5] = True
    assert metrics.bounding_box(first, second) == (slice(1, 9), slice(4, 12), slice(0, 6))
    assert metrics.bounding_box(first, margin=0) == (slice(2, 4), slice(5, 6), slice(0, 1))
    assert metrics.bounding_box(np.zeros((3, 3, 3), bool)) is None
