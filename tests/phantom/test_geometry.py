"""Implicit shapes, voxel regions and partial-volume painting, on hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from sn_platform.phantom import tissues
from sn_platform.phantom.anatomy import ellipsoid_distance
from sn_platform.phantom.compositor import Canvas, RegionPainter, TissueClass
from sn_platform.phantom.regions import (
    AnatomicalBox,
    Pose,
    region_coordinates,
    split_box,
    world_bounds,
    world_box,
)
from sn_platform.phantom.surroundings import Ellipsoid

IDENTITY = Pose(rotation_deg=(0.0, 0.0, 0.0), shift_mm=(0.0, 0.0, 0.0), deformation_seed=0)


@pytest.mark.parametrize(
    ("point", "distance_mm"),
    [
        ((3.0, 0.0, 0.0), 1.0),  # 1 mm outside along the 2 mm semi-axis
        ((0.0, 6.0, 0.0), 2.0),
        ((0.0, 0.0, 4.0), -4.0),  # halfway in along the 8 mm semi-axis
        ((0.0, 0.0, 0.0), -8.0),  # the centre: the largest semi-axis in
    ],
)
def test_ellipsoid_distance_is_exact_along_the_axes(point, distance_mm):
    distance = ellipsoid_distance(np.array([point]), (0.0, 0.0, 0.0), (2.0, 4.0, 8.0))
    assert distance[0] == pytest.approx(distance_mm)


def test_world_box_and_region_coordinates_on_a_small_grid():
    shape, voxel = (10, 8, 4), (1.0, 2.0, 1.0)
    # Voxel centres at x = -4.5 .. 4.5, y = -7 .. 7, z = -1.5 .. 1.5 (mm).
    box = world_box(shape, voxel, np.array([-1.0, 0.0, -9.0]), np.array([1.0, 3.0, 9.0]))
    assert box == (slice(4, 6), slice(4, 6), slice(0, 4))
    assert world_box(shape, voxel, np.array([20.0, 0.0, 0.0]), np.array([30.0, 1.0, 1.0])) is None
    shifted = Pose((0.0, 0.0, 90.0), (1.0, 0.0, 0.0), 0)
    region = region_coordinates(shape, voxel, shifted, box, deformed=False)
    # World (-0.5, 1, -1.5) minus the shift, rotated back by -90 degrees about z.
    assert region.u[0] == pytest.approx([1.0, 1.5, -1.5])
    assert region.shape == (2, 2, 4) and region.u.shape == (16, 3)


@pytest.mark.parametrize(
    "shape",
    [AnatomicalBox((0.0, 2.0, 0.0), (1.0, 3.0, 4.0)), Ellipsoid((0.0, 2.0, 0.0), (1.0, 3.0, 4.0))],
)
def test_bounds_follow_the_rotation(shape):
    quarter_turn = Pose((0.0, 0.0, 90.0), (5.0, 0.0, 0.0), 0)
    lower, upper = world_bounds(quarter_turn, shape, 0.5)
    # Centre (0, 2, 0) lands at (-2, 0, 0) + shift; half-sizes (1, 3, 4) swap x and y.
    assert lower == pytest.approx([-0.5, -1.5, -4.5])
    assert upper == pytest.approx([6.5, 1.5, 4.5])


@pytest.mark.parametrize(
    ("shape", "half_x_mm"),
    [
        # The box's corner: (1 + 3) / sqrt(2); the ellipsoid's tangent: sqrt((1 + 9) / 2).
        (AnatomicalBox((0.0, 0.0, 0.0), (1.0, 3.0, 4.0)), 2.0 * np.sqrt(2.0)),
        (Ellipsoid((0.0, 0.0, 0.0), (1.0, 3.0, 4.0)), np.sqrt(5.0)),
    ],
)
def test_bounds_at_an_eighth_turn_hold_box_corners_and_ellipsoid_tangents(shape, half_x_mm):
    eighth_turn = Pose((0.0, 0.0, 45.0), (0.0, 0.0, 0.0), 0)
    lower, upper = world_bounds(eighth_turn, shape, 0.0)
    assert upper == pytest.approx([half_x_mm, half_x_mm, 4.0])
    assert lower == pytest.approx(-upper)


def test_split_box_tiles_the_box_in_contiguous_x_slabs():
    box = (slice(2, 9), slice(0, 5), slice(1, 3))
    slabs = split_box(box, max_voxels=25)
    assert [s[0] for s in slabs] == [slice(2, 4), slice(4, 6), slice(6, 8), slice(8, 9)]
    assert all(s[1:] == box[1:] for s in slabs)


def test_painter_mixes_echo_signals_by_membership():
    echo_times = np.array([10.0, 20.0])
    classes = np.zeros(3, np.uint8)
    painter = RegionPainter(
        np.zeros((2, 3)), np.zeros(3), classes, echo_times, 10.0, crus_r2star=20.0
    )
    painter.paint(np.array([0.0, 0.5, 1.0]), 1.2, 30.0, 0.1, TissueClass.RED_NUCLEUS)
    # M0_eff = 1.2 exp(TE1 (30 - 20) / s): echo 1 is 1.2 x the crus's exp(-TE1 * 20 / s).
    full = 1.2 * np.exp(0.01 * 10.0) * np.exp(-np.array([0.01, 0.02]) * 30.0)
    assert painter.signals == pytest.approx(np.outer(full, [0.0, 0.5, 1.0]))
    assert painter.chi == pytest.approx([0.0, 0.05, 0.1])
    assert classes.tolist() == [0, TissueClass.RED_NUCLEUS, TissueClass.RED_NUCLEUS]
    painter.paint(np.array([0.0, 1.0, 0.4]), 0.5, 20.0, 0.0, TissueClass.CSF)
    csf = 0.5 * np.exp(-np.array([0.01, 0.02]) * 20.0)
    assert painter.signals[:, 2] == pytest.approx(0.6 * full + 0.4 * csf)
    assert painter.chi == pytest.approx([0.0, 0.0, 0.06])
    # A voxel takes the class of the last tissue that fills at least half of it.
    assert classes.tolist() == [0, TissueClass.CSF, TissueClass.RED_NUCLEUS]


def test_canvas_paints_a_box_and_leaves_air_outside():
    canvas = Canvas((slice(1, 3), slice(0, 2), slice(0, 1)), np.array([5.0]), 5.0, 20.0)
    region = region_coordinates(
        (4, 2, 1), (1.0, 1.0, 1.0), IDENTITY, (slice(2, 3), slice(0, 2), slice(0, 1)), False
    )
    with canvas.painting(region.box) as painter:
        painter.paint_tissue(np.ones(2), tissues.WHITE_MATTER)
    # The canvas holds x = 1, 2 of the grid; only x = 2 was painted.
    echo = canvas.signals[0].reshape(canvas.shape)[:, :, 0]
    np.testing.assert_allclose(echo, [[0, 0], [np.exp(-0.1)] * 2], rtol=1e-6)
    chi = canvas.chi_on_grid((4, 2, 1))[:, :, 0]
    np.testing.assert_allclose(chi, [[0, 0], [0, 0], [-0.03, -0.03], [0, 0]], rtol=1e-6)
    classes = canvas.classes_on_grid((4, 2, 1))[:, :, 0]
    assert classes.tolist() == [[0, 0], [0, 0], [TissueClass.WHITE_MATTER] * 2, [0, 0]]
    assert canvas.within((slice(0, 2), slice(0, 5), slice(0, 1))) == (
        slice(1, 2),
        slice(0, 2),
        slice(0, 1),
    )
