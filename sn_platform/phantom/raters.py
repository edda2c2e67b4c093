"""Simulated neuroradiologist tracing: the true structure drawn with a generous margin.

A rater traces slice by slice, so the margin is measured in-plane; the boundary wanders
by a smooth random jitter whose SD is the rater's precision (PHANTOM.md: 0.6-0.9 mm).
A generous tracing never cuts into the structure, so the result always contains it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from sn_platform.phantom.acquisition import smooth_noise

# Sampling along the slice axis large enough that the distance transform never
# crosses slices: the in-plane distance a slice-by-slice rater perceives.
_NO_THROUGH_PLANE_MM = 1e6
# How far (mm) beyond its margin a tracing can reach: more than five SDs of the largest
# jitter, so tracing inside a box this much larger than the structure changes nothing.
RATER_REACH_MM = 6.0


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
) -> NDArray[np.float32]:
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
    jitter_mm: NDArray[np.floating] | float = 0.0,
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


def rater_pair(
    structure: NDArray[np.bool_],
    voxel_mm: tuple[float, float, float],
    margin_mm: float,
    jitter_sd_mm: tuple[float, float],
    shared_fraction: float,
    streams: Sequence[np.random.Generator],
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Two raters' tracings of ``structure`` whose boundary errors share ``shared_fraction``.

    Part of a rater's error follows what the image shows (a blurred edge misleads both
    raters alike); the rest is the rater's own. Each rater's jitter SD stays as given.
    ``streams`` are three generators: the shared error, rater 1's and rater 2's own.
    Work is confined to a box around the structure (RATER_REACH_MM beyond the margin).
    """
    tracings = (np.zeros_like(structure), np.zeros_like(structure))
    box = _box_around(structure, voxel_mm, margin_mm + RATER_REACH_MM)
    if box is None:
        return tracings
    crop = structure[box]
    shared = boundary_jitter(crop.shape, voxel_mm, streams[0])
    for tracing, sd_mm, stream in zip(tracings, jitter_sd_mm, streams[1:], strict=True):
        own = boundary_jitter(crop.shape, voxel_mm, stream)
        jitter = sd_mm * (np.sqrt(shared_fraction) * shared + np.sqrt(1.0 - shared_fraction) * own)
        tracing[box] = rater_tracing(crop, voxel_mm, margin_mm, jitter)
    return tracings


def _box_around(
    mask: NDArray[np.bool_], voxel_mm: tuple[float, float, float], reach_mm: float
) -> tuple[slice, slice, slice] | None:
    """Bounding box of ``mask`` grown by ``reach_mm`` in-plane and one slice, or None if empty."""
    if not mask.any():
        return None
    grow = (int(np.ceil(reach_mm / voxel_mm[0])), int(np.ceil(reach_mm / voxel_mm[1])), 1)
    box = []
    for axis, (size, extra) in enumerate(zip(mask.shape, grow, strict=True)):
        occupied = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append(
            slice(max(int(occupied[0]) - extra, 0), min(int(occupied[-1]) + 1 + extra, size))
        )
    return (box[0], box[1], box[2])
