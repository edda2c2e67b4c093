"""The largest component per hemisphere, on constructed masks with known answers, including
the held-out failure it was written for: a large false positive far to one side that moved
the mask's centroid past one SN, so both SNs fell on one side and one was dropped."""

from __future__ import annotations

import numpy as np
import pytest

from sn_platform.inference.postprocess import (
    keep_largest_component_per_hemisphere,
    midline_x_mm,
)

AFFINE = np.diag([0.5, 0.5, 1.0, 1.0])  # world x = 0.5 * i (mm)
SHAPE = (160, 40, 10)


def _block(mask: np.ndarray, x: int, width: int, depth: int = 8) -> None:
    mask[x : x + width, 10 : 10 + depth, 2:8] = True


def test_a_large_false_positive_far_to_one_side_keeps_both_sns():
    mask = np.zeros(SHAPE, bool)
    _block(mask, 80, 8)  # left SN, centre x = 41.75 mm, 384 voxels
    _block(mask, 110, 8)  # right SN, centre x = 56.75 mm, 384 voxels
    _block(mask, 2, 6, depth=6)  # false positive 45 mm further out, 216 voxels
    _block(mask, 100, 2, depth=2)  # a speck beside the right SN, 24 voxels
    # The old rule (the mask's centroid, 39.2 mm) put both SNs on one side.
    assert np.argwhere(mask)[:, 0].mean() * 0.5 == pytest.approx(39.2, abs=0.05)
    kept = keep_largest_component_per_hemisphere(mask, AFFINE)
    expected = np.zeros(SHAPE, bool)
    _block(expected, 80, 8)
    _block(expected, 110, 8)
    np.testing.assert_array_equal(kept, expected)


def test_with_no_pair_the_centroid_splits_and_each_side_keeps_its_largest():
    mask = np.zeros(SHAPE, bool)
    _block(mask, 60, 20)  # one wide component
    kept = keep_largest_component_per_hemisphere(mask, np.diag([0.5, 0.5, 1.0, 1.0]))
    np.testing.assert_array_equal(kept, mask)
    assert not keep_largest_component_per_hemisphere(np.zeros(SHAPE, bool), AFFINE).any()


@pytest.mark.parametrize(
    ("sizes", "centres", "expected"),
    [
        ([1327, 1285, 708], [9.8, -6.4, -36.0], 1.7),  # held-out sub-010
        ([1567, 1515, 1001], [-15.5, -1.9, -43.3], -8.7),  # held-out sub-016
        ([500, 400], [0.0, 2.0], None),  # two pieces of one side: no pair
        ([500, 400, 300], [0.0, 2.0, 60.0], None),  # too far apart to be the two sides
        ([500, 400, 300], [0.0, 2.0, 12.0], 6.0),  # the largest pair that can be the sides
    ],
)
def test_midline_is_halfway_between_the_largest_plausible_pair(sizes, centres, expected):
    midline = midline_x_mm(np.array(sizes, float), np.array(centres, float))
    assert midline == (None if expected is None else pytest.approx(expected))
