"""Post-processing of a binary SN mask."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from sn_platform.evaluation.metrics import bounding_box


def keep_largest_component_per_hemisphere(
    mask: NDArray[np.bool_], affine: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """Keep, on each side of the midsagittal plane, only the largest 26-connected component.

    The SN is one structure per hemisphere; isolated blobs elsewhere are false positives.
    The plane is world x = the mask's centroid (the bilateral SN straddles it).

    Parameters
    ----------
    mask : (X, Y, Z) binary mask in any voxel orientation
    affine : (4, 4) voxel-to-world affine (mm, RAS+)
    """
    mask = np.asarray(mask, dtype=bool)
    box = bounding_box(mask)
    if box is None:
        return mask
    kept = np.zeros_like(mask)
    shift = np.eye(4)
    shift[:3, 3] = [s.start for s in box]
    kept[box] = _largest_per_hemisphere(mask[box], affine @ shift)
    return kept


def _largest_per_hemisphere(
    mask: NDArray[np.bool_], affine: NDArray[np.float64]
) -> NDArray[np.bool_]:
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    indices = np.indices(mask.shape).reshape(3, -1).T
    world_x = (indices @ affine[0, :3] + affine[0, 3]).reshape(mask.shape)
    midline = float(world_x[mask].mean())
    sizes = ndimage.sum_labels(np.ones_like(mask), labels, index=np.arange(1, count + 1))
    centres = ndimage.mean(world_x, labels, index=np.arange(1, count + 1))
    keep = np.zeros(count + 1, dtype=bool)
    for side in (np.asarray(centres) < midline, np.asarray(centres) >= midline):
        if side.any():
            candidates = np.flatnonzero(side)
            keep[1 + candidates[np.argmax(np.asarray(sizes)[candidates])]] = True
    return keep[labels]
