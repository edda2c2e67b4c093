"""Simulated neuroradiologist tracing: the true structure drawn with a generous margin.

A rater traces slice by slice, so the margin is measured in-plane; the boundary wanders
by a smooth random jitter whose SD is the rater's precision (PHANTOM.md: 0.6-0.9 mm).
A generous tracing never cuts into the structure, so the result always contains it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from sn_platform.phantom.acquisition import smooth_noise

# Sampling along the slice axis large enough that the distance transform never
# crosses slices: the in-plane distance a slice-by-slice rater perceives.
_NO_THROUGH_PLANE_MM = 1e6


def in_plane_distance_mm(
    mask: NDArray[np.bool_], voxel_mm: tuple[float, float, float]
) -> NDArray[np.float64]:
    """In-plane distance (mm) from every voxel outside ``mask`` to it (0 inside).

    Slices without any mask voxel get a distance above any plausible margin.
    """
    sampling = (voxel_mm[0], voxel_mm[1], _NO_THROUGH_PLANE_MM)
    return np.asarray(ndimage.distance_transform_edt(~mask, sampling=sampling))


def boundary_jitter(
    shape: tuple[int, int, int],
    voxel_mm: tuple[float, float, float],
    rng: np.random.Generator,
    correlation_mm: float = 1.5,
) -> NDArray[np.float64]:
    """Smooth random boundary displacement field with unit SD (mm per unit of SD).

    Smooth in-plane over ``correlation_mm``; about one slice through-plane, since each
    slice is traced on its own.
    """
    sigma = (correlation_mm / voxel_mm[0], correlation_mm / voxel_mm[1], 0.5)
    return smooth_noise(shape, sigma, 1.0, rng)


def rater_tracing(
    structure: NDArray[np.bool_],
    voxel_mm: tuple[float, float, float],
    margin_mm: float,
    jitter_mm: NDArray[np.float64] | float = 0.0,
) -> NDArray[np.bool_]:
    """One rater's tracing of ``structure`` (X, Y, Z) bool: margin plus boundary jitter.

    Parameters
    ----------
    structure : the true structure
    voxel_mm : voxel size (mm)
    margin_mm : mean in-plane margin drawn around the structure (mm)
    jitter_mm : boundary displacement (mm), a field of the structure's shape or a scalar
    """
    traced = in_plane_distance_mm(structure, voxel_mm) <= margin_mm + jitter_mm
    return traced | structure
