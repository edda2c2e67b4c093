"""The cascade's box: cropping around a world point, resampling only the box, and the centre
of what a localiser found."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchio as tio
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp
from scipy import ndimage
from scipy.spatial.transform import Rotation

from sn_platform.data.bids import Geometry
from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.data.roi import (
    box_cropping,
    mask_centre,
    mask_voxels,
    source_cropping,
    spatial_in_box,
    structures_centre,
)

# 0.5 x 0.5 x 1 mm voxels, origin at (-25, -25, -20) mm.
AFFINE = np.array(
    [[0.5, 0, 0, -25.0], [0, 0.5, 0, -25.0], [0, 0, 1.0, -20.0], [0, 0, 0, 1]], dtype=float
)


BOX_MM = (16.0, 16.0, 8.0)


def world(voxel: tuple[float, float, float]) -> np.ndarray:
    return AFFINE[:3, :3] @ np.asarray(voxel, dtype=float) + AFFINE[:3, 3]


def test_box_is_centred_sized_and_spans_a_shorter_axis() -> None:
    # Centre at voxel (40, 60, 20): a 10 x 16 mm box is 20 x 32 voxels; 40 slices < 100 mm.
    cropping = box_cropping(
        Geometry((100, 100, 40), AFFINE), world((40, 60, 20)), (10.0, 16.0, 100.0)
    )
    assert cropping == (31, 49, 45, 23, 0, 0)


def test_box_is_shifted_inside_the_volume() -> None:
    # A centre 2 voxels from the first edge: the box starts at 0 and keeps its size.
    cropping = box_cropping(
        Geometry((100, 100, 40), AFFINE), world((2, 97, 20)), (10.0, 10.0, 10.0)
    )
    assert cropping == (0, 80, 80, 0, 16, 14)


def test_box_of_an_oblique_grid_holds_the_centre() -> None:
    # Left-right flipped storage (LAS): the centre still lands in the box.
    flipped = AFFINE.copy()
    flipped[0, 0], flipped[0, 3] = -0.5, 25.0
    centre = flipped[:3, :3] @ np.array([70.0, 50.0, 10.0]) + flipped[:3, 3]
    x0, x1, *_ = box_cropping(Geometry((100, 100, 40), flipped), centre, (20.0, 20.0, 20.0))
    assert x0 <= 70 < 100 - x1 and 100 - x0 - x1 == 40


def test_box_keeps_every_voxel_where_it_was_in_the_world() -> None:
    data = torch.zeros(1, 100, 100, 40)
    data[0, 45, 55, 22] = 1.0
    subject = tio.Subject(echo1=tio.ScalarImage(tensor=data, affine=AFFINE))
    spec = PreprocessingSpec(
        channels=("echo-1",), spacing_mm=None, min_shape=(8, 8, 4), roi_mm=BOX_MM
    )
    image = spatial_in_box(subject, spec, world((45, 55, 22)))["echo1"]
    assert image.spatial_shape == (32, 32, 8)
    marker = np.argwhere(image.data[0].numpy() > 0)[0]
    np.testing.assert_allclose(
        image.affine[:3, :3] @ marker + image.affine[:3, 3], world((45, 55, 22))
    )


# Labels are compared where nearest-neighbour has no ties: from 0.5 mm to 0.5 mm, TorchIO's
# rule (floor of the size) drops a voxel and shifts the grid by half of one, so every label
# voxel is a tie that rounding decides, in either pipeline.
@pytest.mark.parametrize(
    ("voxel_mm", "labels_too"),
    [((0.5, 0.5, 1.0), False), ((0.6, 0.6, 1.2), True), ((0.55, 0.45, 2.0), False)],
)
def test_resampling_only_the_box_equals_resampling_everything_then_cropping(
    voxel_mm, labels_too
) -> None:
    # A smooth volume stored left-right flipped (LAS), slightly oblique, and a label map.
    rng = np.random.default_rng(0)
    shape = (70, 64, 20)
    data = torch.from_numpy(ndimage.gaussian_filter(rng.random(shape), 2.0)[None]).float()
    labels = torch.from_numpy((data[0].numpy() > 0.5)[None].astype(np.uint8))
    rotation = Rotation.from_euler("z", 7, degrees=True).as_matrix()
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-voxel_mm[0], voxel_mm[1], voxel_mm[2]])
    affine[:3, 3] = (20.0, -15.0, -8.0)
    subject = tio.Subject(
        echo1=tio.ScalarImage(tensor=data, affine=affine),
        label=tio.LabelMap(tensor=labels, affine=affine),
    )
    spec = PreprocessingSpec(channels=("echo-1",), spacing_mm=(0.5, 0.5, 1.0), min_shape=(8, 8, 4),
                             roi_mm=BOX_MM)  # fmt: skip
    centre = affine[:3, :3] @ np.array([30.0, 35.0, 9.0]) + affine[:3, 3]
    whole = spec.spatial_transform()(subject)
    image = whole.get_first_image()
    expected = tio.Crop(box_cropping(Geometry(image.spatial_shape, image.affine), centre, BOX_MM))(
        whole
    )
    boxed = spatial_in_box(subject, spec, centre)
    for key in ("echo1", "label") if labels_too else ("echo1",):
        assert boxed[key].spatial_shape == expected[key].spatial_shape == (32, 32, 8)
        np.testing.assert_allclose(boxed[key].affine, expected[key].affine, atol=1e-9)
        np.testing.assert_allclose(boxed[key].data, expected[key].data, atol=1e-5)


def test_the_source_is_cropped_to_the_boxs_footprint_and_two_voxels_around() -> None:
    # A 32 x 32 x 8 box at 0.25 x 0.5 x 2 mm whose first voxel centre is at source voxel
    # (9.75, 20, 5.5): its corners (voxel edges) span source voxels 9.5-25.5, 19.5-51.5 and
    # 4.5-20.5; two voxels more around, the source keeps 7-28, 17-54 and 2-23.
    box_affine = AFFINE.copy()
    box_affine[:3, :3] = np.diag([0.25, 0.5, 2.0])
    box_affine[:3, 3] = world((10, 20, 5)) + np.array([-0.125, 0.0, 0.5])
    source = Geometry((100, 100, 40), AFFINE)
    assert source_cropping(source, (32, 32, 8), box_affine) == (7, 71, 17, 45, 2, 16)
    # Near the volume's edge the cropping stops at it; off the volume nothing is cropped.
    box_affine[:3, 3] = world((-1, 90, 30))
    x0, _, _, y1, _, z1 = source_cropping(source, (32, 32, 8), box_affine)
    assert x0 == 0 and y1 == 0 and z1 == 0
    box_affine[:3, 3] = world((500, 0, 0))
    assert source_cropping(source, (32, 32, 8), box_affine) == (0, 0, 0, 0, 0, 0)


@settings(max_examples=50, derandomize=True, deadline=None, database=None)
@given(hnp.arrays(bool, hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=7)))
def test_mask_voxels_are_numpys_argwhere(mask) -> None:
    np.testing.assert_array_equal(mask_voxels(mask), np.argwhere(mask))
    assert mask_voxels(mask).shape == (int(mask.sum()), 3)


def test_mask_centre_is_the_world_centroid() -> None:
    mask = np.zeros((100, 100, 40), dtype=bool)
    mask[10:20, 30:34, 5:7] = True  # centroid voxel (14.5, 31.5, 5.5)
    np.testing.assert_allclose(mask_centre(mask, AFFINE), world((14.5, 31.5, 5.5)))
    assert mask_centre(np.zeros_like(mask), AFFINE) is None


def test_structures_centre_ignores_a_distant_stray_blob() -> None:
    probability = np.zeros((100, 100, 40), dtype=np.float32)
    probability[40:44, 50:54, 18:22] = 0.9  # left SN
    probability[56:60, 50:54, 18:22] = 0.9  # right SN, 8 mm away
    probability[2:5, 2:5, 2:5] = 0.8  # a stray blob 35 mm away, less mass
    centre = structures_centre(probability, AFFINE, threshold=0.5, radius_mm=30.0)
    np.testing.assert_allclose(centre, world((49.5, 51.5, 19.5)))
    assert structures_centre(np.zeros_like(probability), AFFINE, 0.5) is None
