"""The region a cascade's second stage sees: a box (mm) around the structures' centre.

The first stage (a coarse localiser over the whole field of view) gives the centre on new
data; in training the centre of the reference labels does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torchio as tio
from numpy.typing import NDArray
from scipy import ndimage


def voxel_to_world(affine: NDArray[np.float64], voxel: NDArray[np.float64]) -> NDArray[np.float64]:
    """World coordinates (mm, RAS+) of a voxel position (3,) under ``affine`` (4, 4)."""
    return np.asarray(affine[:3, :3] @ voxel + affine[:3, 3], dtype=np.float64)


def mask_centre(mask: NDArray[np.bool_], affine: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """World centre (mm) of the centroid of ``mask`` (X, Y, Z); None when it is empty."""
    voxels = np.argwhere(mask)
    if voxels.size == 0:
        return None
    return voxel_to_world(affine, voxels.mean(axis=0))


def structures_centre(
    probability: NDArray[np.floating],
    affine: NDArray[np.float64],
    threshold: float,
    radius_mm: float = 30.0,
) -> NDArray[np.float64] | None:
    """World centre (mm) of the structures a localiser found; None when it found none.

    ``probability`` (X, Y, Z) is the localiser's foreground probability (any label). The
    connected component holding the most probability anchors the search, so a stray blob
    elsewhere cannot pull the centre away; the centre is the centroid of every voxel above
    ``threshold`` within ``radius_mm`` of that component (both sides of the midbrain).
    """
    found = probability > threshold
    components, count = ndimage.label(found)
    if count == 0:
        return None
    mass = ndimage.sum(probability, components, index=np.arange(1, count + 1))
    anchor = mask_centre(components == int(np.argmax(mass)) + 1, affine)
    assert anchor is not None  # a labelled component is never empty
    voxels = np.argwhere(found)
    world = voxels @ affine[:3, :3].T + affine[:3, 3]
    near = np.linalg.norm(world - anchor, axis=1) <= radius_mm
    return np.asarray(world[near].mean(axis=0), dtype=np.float64)


def volume_centre(affine: NDArray[np.float64], shape: Sequence[int]) -> NDArray[np.float64]:
    """World centre (mm) of a grid of ``shape`` voxels under ``affine``."""
    return voxel_to_world(affine, (np.asarray(shape[:3], dtype=np.float64) - 1) / 2)


def box_cropping(
    affine: NDArray[np.float64],
    shape: Sequence[int],
    centre_mm: NDArray[np.float64],
    size_mm: Sequence[float],
) -> tuple[int, ...]:
    """TorchIO cropping (ini, fin per axis, voxels) of the box of ``size_mm`` (X, Y, Z)
    around ``centre_mm`` on a grid of ``shape`` and ``affine``.

    The box is shifted to stay inside the grid, and spans an axis that is shorter than it.
    """
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    centre = np.linalg.solve(
        affine[:3, :3], np.asarray(centre_mm, dtype=np.float64) - affine[:3, 3]
    )
    cropping: list[int] = []
    for axis in range(3):
        length = int(shape[axis])
        wanted = min(length, round(float(size_mm[axis]) / spacing[axis]))
        start = int(np.floor(centre[axis] - (wanted - 1) / 2 + 0.5))  # half up
        start = min(max(start, 0), length - wanted)
        cropping += [start, length - start - wanted]
    return tuple(cropping)


def crop_to_box(
    subject: tio.Subject, centre_mm: NDArray[np.float64], size_mm: Sequence[float]
) -> tio.Subject:
    """``subject`` (every image on one grid) cropped to the box of ``size_mm`` around
    ``centre_mm`` (``box_cropping``); the affine keeps every voxel where it was in the world."""
    image = subject.get_first_image()
    cropping = box_cropping(image.affine, image.spatial_shape, centre_mm, size_mm)
    return tio.Crop(cropping)(subject)
