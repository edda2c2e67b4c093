"""The method's slab below the red nucleus, on constructed grids with known slices."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sn_platform.data.slab import SlabRule, place_slab, slab_below, slices_for

RAS = np.diag([0.5, 0.5, 1.0, 1.0])


def test_slab_below_red_nucleus():
    rn = np.zeros((4, 4, 12), bool)
    rn[1:3, 1:3, 7:10] = True
    assert slab_below(rn, 3) == [4, 5, 6]
    rn[:, :, :] = False
    rn[1, 1, 1:3] = True
    assert slab_below(rn, 3) == [0]
    assert slab_below(np.zeros((2, 2, 5), bool), 3) == []


def _red_nucleus(shape=(8, 8, 20), lowest=10) -> np.ndarray:
    rn = np.zeros(shape, bool)
    rn[2:6, 2:6, lowest : lowest + 4] = True
    return rn


def test_slab_from_a_red_nucleus_on_a_ras_grid():
    affine = RAS.copy()
    affine[2, 3] = -40.0  # slice k lies at z = k - 40 mm
    slab = place_slab(_red_nucleus(), affine, 3)
    assert np.flatnonzero(slab.mask.any(axis=(0, 1))).tolist() == [7, 8, 9]
    assert slab.mask[..., 7:10].all() and slab.mask.sum() == 8 * 8 * 3
    assert (slab.bottom_mm, slab.top_mm) == (-33.0, -31.0)
    assert slab.slice_mm == 1.0 and slab.found and not slab.touches_edge


def test_slab_is_the_same_in_world_space_when_stored_upside_down_and_permuted():
    rn = _red_nucleus()
    flip = np.diag([1.0, 1.0, -1.0, 1.0])
    flip[2, 3] = 19.0  # stored z index i is RAS slice 19 - i
    stored = rn[..., ::-1]
    permute = np.eye(4)[[2, 0, 1, 3]]  # stored axes (z, x, y): the axial axis comes first
    for data, affine in ((stored, RAS @ flip), (np.moveaxis(rn, 2, 0), RAS @ permute.T)):
        slab = place_slab(data, affine, 3)
        assert (slab.bottom_mm, slab.top_mm) == (7.0, 9.0)
        assert slab.mask.sum() == 8 * 8 * 3


def test_a_red_nucleus_at_the_bottom_gives_a_clipped_slab_touching_the_edge():
    slab = place_slab(_red_nucleus(lowest=1), RAS, 3)
    assert slab.touches_edge and slab.mask.sum() == 8 * 8
    top = place_slab(_red_nucleus(lowest=16), RAS, 3)  # the RN reaches the last slice
    assert top.touches_edge and top.mask.sum() == 8 * 8 * 3


def test_no_red_nucleus_gives_an_empty_slab():
    slab = place_slab(np.zeros((8, 8, 20), bool), RAS, 3)
    assert not slab.found and math.isnan(slab.bottom_mm) and not slab.touches_edge
    assert math.isnan(slab.offset_slices(place_slab(_red_nucleus(), RAS, 3)))


def test_offset_between_two_slabs_in_slices():
    higher = place_slab(_red_nucleus(lowest=12), RAS, 3)
    assert higher.offset_slices(place_slab(_red_nucleus(lowest=10), RAS, 3)) == 2.0
    assert SlabRule(3.0, "RN").place({"SN": _red_nucleus()}, RAS) is None


@pytest.mark.parametrize(
    ("slice_mm", "expected"), [(1.0, 3), (1.2, 3), (1.5, 2), (0.5, 6), (2.2, 1), (3.0, 1)]
)
def test_a_slab_in_mm_is_the_nearest_whole_number_of_native_slices(slice_mm, expected):
    assert slices_for(3.0, slice_mm) == expected
    assert slices_for(3.0, float(np.float32(slice_mm))) == expected  # a NIfTI header's float32
    affine = np.diag([0.75, 0.75, slice_mm, 1.0])
    slab = SlabRule(3.0, "RN").place({"RN": _red_nucleus(lowest=10)}, affine)
    assert slab is not None
    occupied = np.flatnonzero(slab.mask.any(axis=(0, 1)))
    assert occupied.tolist() == list(range(10 - expected, 10))
    assert slab.slice_mm == pytest.approx(slice_mm)


def test_slices_must_be_positive():
    with pytest.raises(ValueError, match="n_slices"):
        place_slab(_red_nucleus(), RAS, 0)
