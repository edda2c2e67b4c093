"""The region a cascade's second stage sees: a box (mm) around the structures' centre.

The first stage (a coarse localiser over the whole field of view) gives the centre on new
data; in training the centre of the reference labels does. ``spatial_in_box`` resamples
only the box: the same voxels as resampling the whole field of view and cropping, at a
fraction of the cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torchio as tio
from numpy.typing import NDArray
from scipy import ndimage

from sn_platform.data.bids import Geometry
from sn_platform.data.preprocessing import PreprocessingSpec


def voxel_to_world(affine: NDArray[np.float64], voxel: NDArray[np.float64]) -> NDArray[np.float64]:
    """World coordinates (mm, RAS+) of a voxel position (3,) under ``affine`` (4, 4)."""
    return np.asarray(affine[:3, :3] @ voxel + affine[:3, 3], dtype=np.float64)


def mask_voxels(mask: NDArray[np.bool_]) -> NDArray[np.intp]:
    """Voxel indices (N, 3) of the true voxels of ``mask`` (X, Y, Z), C order: the rows of
    ``np.argwhere(mask)``, from the flat indices (measured: about 20 times faster on a
    sparse 440 x 440 x 40 mask)."""
    return np.stack(np.unravel_index(np.flatnonzero(mask), mask.shape), axis=-1)


def mask_centre(mask: NDArray[np.bool_], affine: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """World centre (mm) of the centroid of ``mask`` (X, Y, Z); None when it is empty."""
    voxels = mask_voxels(mask)
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
    voxels = mask_voxels(found)
    world = voxels @ affine[:3, :3].T + affine[:3, 3]
    near = np.linalg.norm(world - anchor, axis=1) <= radius_mm
    return np.asarray(world[near].mean(axis=0), dtype=np.float64)


def volume_centre(affine: NDArray[np.float64], shape: Sequence[int]) -> NDArray[np.float64]:
    """World centre (mm) of a grid of ``shape`` voxels under ``affine``."""
    return voxel_to_world(affine, (np.asarray(shape[:3], dtype=np.float64) - 1) / 2)


def box_cropping(
    grid: Geometry, centre_mm: NDArray[np.float64], size_mm: Sequence[float]
) -> tuple[int, ...]:
    """TorchIO cropping (ini, fin per axis, voxels) of the box of ``size_mm`` (X, Y, Z)
    around ``centre_mm`` (world mm) on ``grid``.

    The box is shifted to stay inside the grid, and spans an axis that is shorter than it.
    """
    affine = grid.affine
    spacing = np.asarray(grid.voxel_mm)
    centre = np.linalg.solve(
        affine[:3, :3], np.asarray(centre_mm, dtype=np.float64) - affine[:3, 3]
    )
    cropping: list[int] = []
    for axis in range(3):
        length = grid.shape[axis]
        wanted = min(length, round(float(size_mm[axis]) / spacing[axis]))
        start = int(np.floor(centre[axis] - (wanted - 1) / 2 + 0.5))  # half up
        start = min(max(start, 0), length - wanted)
        cropping += [start, length - start - wanted]
    return tuple(cropping)


def resampled_grid(
    affine: NDArray[np.float64], shape: Sequence[int], spacing_mm: Sequence[float]
) -> tuple[tuple[int, int, int], NDArray[np.float64]]:
    """The grid ``tio.Resample(spacing_mm)`` maps a ``shape`` x ``affine`` image onto.

    TorchIO's rule: the same centre and axes, ``floor(size * spacing / spacing_mm)`` voxels
    per axis (a singleton axis stays one voxel).

    Returns
    -------
    (X, Y, Z) voxels and the (4, 4) voxel-to-world affine (mm, RAS+)
    """
    old_spacing = np.linalg.norm(affine[:3, :3], axis=0)
    new_spacing = np.asarray(spacing_mm, dtype=np.float64)
    old_shape = np.asarray(shape[:3], dtype=np.float64)
    new_shape = np.floor(old_shape * old_spacing / new_spacing)
    new_shape[old_shape == 1] = 1
    axes = affine[:3, :3] / old_spacing
    centre = voxel_to_world(affine, (old_shape - 1) / 2)
    grid = np.eye(4)
    grid[:3, :3] = axes * new_spacing
    grid[:3, 3] = centre - axes @ ((new_shape - 1) / 2 * new_spacing)
    x, y, z = (int(n) for n in new_shape)
    return (x, y, z), grid


def spatial_in_box(
    subject: tio.Subject, spec: PreprocessingSpec, centre_mm: NDArray[np.float64] | None
) -> tio.Subject:
    """``spec``'s spatial steps, then the box of ``spec.roi_mm`` around ``centre_mm`` (the
    volume's centre when None), computed inside the box only.

    The voxels equal those of ``spec.spatial_transform()`` cropped to the box
    (``box_cropping``): the box is found on the grid the whole volume would be resampled
    onto (``resampled_grid``) and every image is resampled straight onto its part of it.
    """
    if spec.roi_mm is None:
        raise ValueError("spatial_in_box needs a box (roi_mm)")
    subject = spec.orientation_transform()(subject)
    image = subject.get_first_image()
    shape, affine = tuple(image.spatial_shape), image.affine
    if spec.spacing_mm is not None:
        shape, affine = resampled_grid(affine, shape, spec.spacing_mm)
    if centre_mm is None:
        centre_mm = volume_centre(affine, shape)
    cropping = box_cropping(
        Geometry((shape[0], shape[1], shape[2]), affine), centre_mm, spec.roi_mm
    )
    if spec.spacing_mm is None:
        return spec.padding()(tio.Crop(cropping)(subject))
    start = np.array(cropping[0::2], dtype=np.float64)
    box_shape = tuple(
        int(n - a - b) for n, a, b in zip(shape, cropping[0::2], cropping[1::2], strict=True)
    )
    box_affine = affine.copy()
    box_affine[:3, 3] = voxel_to_world(affine, start)
    if _one_grid(subject):
        source = Geometry(tuple(image.spatial_shape), image.affine)  # type: ignore[arg-type]
        subject = tio.Crop(source_cropping(source, box_shape, box_affine))(subject)
    return spec.padding()(tio.Resample((box_shape, box_affine))(subject))


def _one_grid(subject: tio.Subject) -> bool:
    """Whether every image of ``subject`` lies on the first one's voxel grid."""
    first = subject.get_first_image()
    return all(
        image.spatial_shape == first.spatial_shape and np.allclose(image.affine, first.affine)
        for image in subject.get_images(intensity_only=False)
    )


# Voxels kept around the box's footprint on the source grid: linear interpolation reads
# the voxels next to a point, so one would do; two spare a rounding doubt.
SOURCE_MARGIN_VOXELS = 2


def source_cropping(
    source: Geometry, box_shape: Sequence[int], box_affine: NDArray[np.float64]
) -> tuple[int, ...]:
    """TorchIO cropping (ini, fin per axis, voxels) of the ``source`` volume to the part that
    resampling it onto the box (``box_shape`` voxels under ``box_affine``) reads: the box's
    corners on the source grid, ``SOURCE_MARGIN_VOXELS`` around, within the volume.

    Resampling the cropped volume gives the same voxels, without handing the whole volume
    to SimpleITK (most of the cost of a box: 3.3 of 5.4 s for a training run's subjects).
    """
    shape = np.asarray(source.shape, dtype=np.float64)
    corners = np.array(
        [[i, j, k] for i in (-0.5, box_shape[0] - 0.5) for j in (-0.5, box_shape[1] - 0.5)
         for k in (-0.5, box_shape[2] - 0.5)]
    )  # fmt: skip
    world = corners @ box_affine[:3, :3].T + box_affine[:3, 3]
    index = np.linalg.solve(source.affine[:3, :3], (world - source.affine[:3, 3]).T).T
    low = np.clip(np.floor(index.min(axis=0)) - SOURCE_MARGIN_VOXELS, 0, shape)
    high = np.clip(np.ceil(index.max(axis=0)) + SOURCE_MARGIN_VOXELS + 1, 0, shape)
    if np.any(high <= low):  # the box misses the volume: nothing to save
        return (0, 0, 0, 0, 0, 0)
    cropping: list[int] = []
    for axis in range(3):
        cropping += [int(low[axis]), int(shape[axis] - high[axis])]
    return tuple(cropping)
