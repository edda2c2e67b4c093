"""Spacing-aware segmentation metrics on binary masks (X, Y, Z).

Definitions follow nnU-Net and MONAI: Dice from TP/FP/FN counts, NaN when both masks are
empty; surfaces are the mask voxels removed by one binary erosion, and surface
distances are Euclidean in mm between surface voxel centres.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from sn_platform.data.roi import mask_voxels

Mask = NDArray[np.bool_]
Spacing = Sequence[float]


def _as_bool(mask: NDArray) -> Mask:
    return np.asarray(mask).astype(bool)


def confusion_counts(prediction: NDArray, reference: NDArray) -> tuple[int, int, int]:
    """True positives, false positives and false negatives (voxel counts)."""
    pred, ref = _as_bool(prediction), _as_bool(reference)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    tp = int(np.count_nonzero(pred & ref))
    return tp, int(np.count_nonzero(pred)) - tp, int(np.count_nonzero(ref)) - tp


def dice(prediction: NDArray, reference: NDArray) -> float:
    """Dice similarity coefficient ``2 TP / (2 TP + FP + FN)``; NaN if both are empty."""
    tp, fp, fn = confusion_counts(prediction, reference)
    denominator = 2 * tp + fp + fn
    return float(2 * tp / denominator) if denominator else float("nan")


def bounding_box(*masks: NDArray, margin: int = 1) -> tuple[slice, ...] | None:
    """Index slices of the smallest box holding every voxel of ``masks`` (same shape), grown
    by ``margin`` voxels within the array; None when all are empty. Local operations
    (components, surfaces, distances between the masks) give the same answer inside it."""
    union = np.logical_or.reduce([np.asarray(m, dtype=bool) for m in masks])
    box = []
    for axis in range(union.ndim):
        occupied = np.flatnonzero(union.any(axis=tuple(a for a in range(union.ndim) if a != axis)))
        if occupied.size == 0:
            return None
        start = max(int(occupied[0]) - margin, 0)
        box.append(slice(start, min(int(occupied[-1]) + margin + 1, union.shape[axis])))
    return tuple(box)


def volume_mm3(mask: NDArray, spacing_mm: Spacing) -> float:
    """Volume (mm^3) of a mask with voxel spacing ``spacing_mm``."""
    return float(np.count_nonzero(mask) * np.prod(spacing_mm))


def surface(mask: NDArray) -> Mask:
    """Surface voxels: the mask minus its erosion by the 6-connected structuring element."""
    mask = _as_bool(mask)
    return mask & ~ndimage.binary_erosion(mask)


def directed_surface_distances_mm(
    source: NDArray, target: NDArray, spacing_mm: Spacing
) -> NDArray[np.float64]:
    """Distance (mm) from each surface voxel of ``source`` to the surface of ``target``."""
    target_surface = surface(target)
    distance_to_target = ndimage.distance_transform_edt(~target_surface, sampling=tuple(spacing_mm))
    return np.asarray(distance_to_target)[surface(source)]


def hausdorff_95_mm(prediction: NDArray, reference: NDArray, spacing_mm: Spacing) -> float:
    """95th-percentile symmetric Hausdorff distance (mm), MONAI's definition.

    The larger of the two directed 95th percentiles; NaN if either mask is empty.
    """
    if not np.any(prediction) or not np.any(reference):
        return float("nan")
    box = bounding_box(prediction, reference)  # one voxel of margin keeps every surface
    prediction, reference = np.asarray(prediction)[box], np.asarray(reference)[box]
    forward = directed_surface_distances_mm(prediction, reference, spacing_mm)
    backward = directed_surface_distances_mm(reference, prediction, spacing_mm)
    return float(max(np.percentile(forward, 95), np.percentile(backward, 95)))


def hemisphere_volumes_mm3(
    mask: NDArray, affine: NDArray[np.float64], midline_mm: float | None = None
) -> tuple[float, float]:
    """Left and right volumes (mm^3), split by a sagittal plane in world (RAS) space.

    Parameters
    ----------
    mask : (X, Y, Z) binary mask in any voxel orientation
    affine : (4, 4) voxel-to-world affine (mm, RAS+)
    midline_mm : world x (mm) of the midsagittal plane; by default the mask's own centroid,
        which is the midline for a bilateral structure such as the SN.
    """
    indices = mask_voxels(_as_bool(mask))
    if indices.size == 0:
        return 0.0, 0.0
    voxel_volume = abs(float(np.linalg.det(affine[:3, :3])))
    world_x = indices @ affine[0, :3] + affine[0, 3]
    midline = float(world_x.mean()) if midline_mm is None else midline_mm
    left = int(np.count_nonzero(world_x < midline))
    return left * voxel_volume, (world_x.size - left) * voxel_volume


def per_slice_dice(prediction: NDArray, reference: NDArray, axis: int = 2) -> NDArray[np.float64]:
    """Dice of every slice along ``axis`` (NaN where both slices are empty)."""
    pred = np.moveaxis(_as_bool(prediction), axis, 0)
    ref = np.moveaxis(_as_bool(reference), axis, 0)
    return np.array([dice(p, r) for p, r in zip(pred, ref, strict=True)])


def slices_in_agreement(
    prediction: NDArray,
    reference: NDArray,
    slices: Sequence[int] | None = None,
    threshold: float = 0.5,
    axis: int = 2,
) -> int:
    """The method's check: how many of the selected slices have a slice Dice >= ``threshold``.

    ``slices`` are indices along ``axis`` (all slices when None); a slice empty in both
    masks does not count as agreeing, since it shows nothing.
    """
    scores = per_slice_dice(prediction, reference, axis)
    chosen = scores if slices is None else scores[list(slices)]
    return int(np.count_nonzero(np.nan_to_num(chosen, nan=0.0) >= threshold))
