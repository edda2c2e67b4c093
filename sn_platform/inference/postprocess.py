"""Post-processing of a binary mask of a bilateral structure (SN, RN, CC)."""

from __future__ import annotations

from itertools import combinations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from sn_platform.evaluation.metrics import bounding_box

# Distance (mm, world x) between the centres of a bilateral pair: the SN, RN and CC of the
# two sides lie 4 to 40 mm apart; a false positive further out cannot pair with either.
PAIR_SEPARATION_MM = (4.0, 40.0)
# Components considered when pairing (largest first).
PAIR_CANDIDATES = 6


def keep_largest_component_per_hemisphere(
    mask: NDArray[np.bool_], affine: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """Keep, on each side of the midsagittal plane, only the largest 26-connected component.

    The SN is one structure per hemisphere; isolated blobs elsewhere are false positives.
    The plane is world x = the midpoint of the largest pair of components whose centres lie
    ``PAIR_SEPARATION_MM`` apart (the two sides of the structure), so a large false
    positive far to one side cannot move it; without such a pair, the mask's centroid.

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


def midline_x_mm(sizes: NDArray[np.float64], centres_x_mm: NDArray[np.float64]) -> float | None:
    """World x (mm) halfway between the largest pair of components that can be the two sides.

    Parameters
    ----------
    sizes : (N,) component sizes (voxels)
    centres_x_mm : (N,) world x of the component centres (mm)

    Returns
    -------
    The midpoint of the pair with the largest combined size among the ``PAIR_CANDIDATES``
    largest components whose centres lie ``PAIR_SEPARATION_MM`` apart; None without one.
    """
    largest = np.argsort(-np.asarray(sizes), kind="stable")[:PAIR_CANDIDATES]
    low, high = PAIR_SEPARATION_MM
    pairs = [
        (a, b)
        for a, b in combinations(largest, 2)
        if low <= abs(centres_x_mm[a] - centres_x_mm[b]) <= high
    ]
    if not pairs:
        return None
    a, b = max(pairs, key=lambda pair: sizes[pair[0]] + sizes[pair[1]])
    return float(centres_x_mm[a] + centres_x_mm[b]) / 2.0


def _largest_per_hemisphere(
    mask: NDArray[np.bool_], affine: NDArray[np.float64]
) -> NDArray[np.bool_]:
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    indices = np.indices(mask.shape).reshape(3, -1).T
    world_x = (indices @ affine[0, :3] + affine[0, 3]).reshape(mask.shape)
    index = np.arange(1, count + 1)
    sizes = np.asarray(ndimage.sum_labels(np.ones_like(mask), labels, index=index), dtype=float)
    centres = np.asarray(ndimage.mean(world_x, labels, index=index), dtype=float)
    midline = midline_x_mm(sizes, centres)
    if midline is None:
        midline = float(world_x[mask].mean())
    keep = np.zeros(count + 1, dtype=bool)
    for side in (centres < midline, centres >= midline):
        if side.any():
            candidates = np.flatnonzero(side)
            keep[1 + candidates[np.argmax(sizes[candidates])]] = True
    return keep[labels]
