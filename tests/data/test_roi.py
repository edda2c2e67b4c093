"""The cascade's box: cropping around a world point, and the centre of what a localiser found."""

from __future__ import annotations

import numpy as np
import torch
import torchio as tio

from sn_platform.data.roi import box_cropping, crop_to_box, mask_centre, structures_centre

# 0.5 x 0.5 x 1 mm voxels, origin at (-25, -25, -20) mm.
AFFINE = np.array(
    [[0.5, 0, 0, -25.0], [0, 0.5, 0, -25.0], [0, 0, 1.0, -20.0], [0, 0, 0, 1]], dtype=float
)


def world(voxel: tuple[float, float, float]) -> np.ndarray:
    return AFFINE[:3, :3] @ np.asarray(voxel, dtype=float) + AFFINE[:3, 3]


def test_box_is_centred_sized_and_spans_a_shorter_axis() -> None:
    # Centre at voxel (40, 60, 20): a 10 x 16 mm box is 20 x 32 voxels; 40 slices < 100 mm.
    cropping = box_cropping(AFFINE, (100, 100, 40), world((40, 60, 20)), (10.0, 16.0, 100.0))
    assert cropping == (31, 49, 45, 23, 0, 0)


def test_box_is_shifted_inside_the_volume() -> None:
    # A centre 2 voxels from the first edge: the box starts at 0 and keeps its size.
    cropping = box_cropping(AFFINE, (100, 100, 40), world((2, 97, 20)), (10.0, 10.0, 10.0))
    assert cropping == (0, 80, 80, 0, 16, 14)


def test_box_of_an_oblique_grid_holds_the_centre() -> None:
    # Left-right flipped storage (LAS): the centre still lands in the box.
    flipped = AFFINE.copy()
    flipped[0, 0], flipped[0, 3] = -0.5, 25.0
    centre = flipped[:3, :3] @ np.array([70.0, 50.0, 10.0]) + flipped[:3, 3]
    x0, x1, *_ = box_cropping(flipped, (100, 100, 40), centre, (20.0, 20.0, 20.0))
    assert x0 <= 70 < 100 - x1 and 100 - x0 - x1 == 40


def test_crop_keeps_every_voxel_where_it_was_in_the_world() -> None:
    data = torch.zeros(1, 100, 100, 40)
    data[0, 45, 55, 22] = 1.0
    subject = tio.Subject(image=tio.ScalarImage(tensor=data, affine=AFFINE))
    cropped = crop_to_box(subject, world((45, 55, 22)), (16.0, 16.0, 8.0))
    image = cropped["image"]
    assert image.spatial_shape == (32, 32, 8)
    marker = np.argwhere(image.data[0].numpy() > 0)[0]
    np.testing.assert_allclose(
        image.affine[:3, :3] @ marker + image.affine[:3, 3], world((45, 55, 22))
    )


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
