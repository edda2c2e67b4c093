"""The method's slab: consecutive axial slices just below the red nucleus, on any grid.

The method takes 3 slices of its 1 mm protocol: a slab of 3 mm (``SlabRule.slab_mm``). On
another protocol the slab is the whole native slices nearest that thickness
(``slices_for``): 3 slices of 1.0 or 1.2 mm, 2 of 1.5 mm, 1 of 2.2 or 3 mm; measures are
never taken on interpolated slices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

METHOD_SLICE_MM = 1.0  # the method's slice thickness: its 3 slices are a slab of 3 mm


def slab_below(red_nucleus: NDArray[np.bool_], n_slices: int) -> list[int]:
    """Indices of the ``n_slices`` axial slices just below the red nucleus.

    ``red_nucleus`` is a (X, Y, Z) mask in canonical (RAS) order, so the third axis runs
    inferior to superior. Returns [] when the mask is empty; when the RN reaches the
    bottom of the volume the slab is clipped at slice 0 and may be shorter.
    """
    occupied = np.flatnonzero(red_nucleus.any(axis=(0, 1)))
    if occupied.size == 0:
        return []
    lowest = int(occupied[0])
    return list(range(max(lowest - n_slices, 0), lowest))


def axial_axis(affine: NDArray[np.float64]) -> int:
    """Voxel axis closest to the world's inferior-superior axis."""
    return int(np.argmax(np.abs(affine[2, :3]) / np.linalg.norm(affine[:3, :3], axis=0)))


@dataclass(frozen=True)
class Slab:
    """The slab on a subject's native grid.

    ``mask`` (X, Y, Z) bool, the slab's voxels (all False when no RN was found);
    ``bottom_mm`` and ``top_mm`` world z (mm) of the centres of its lowest and highest
    slices at the volume's in-plane centre (NaN when empty); ``slice_mm`` the slice
    spacing (mm); ``touches_edge`` whether the slab or the RN reaches the volume's first
    or last axial slice (the slab may be clipped or the RN cut off).
    """

    mask: NDArray[np.bool_]
    bottom_mm: float
    top_mm: float
    slice_mm: float
    touches_edge: bool

    @property
    def found(self) -> bool:
        """Whether a slab could be placed (the reference was not empty)."""
        return bool(self.mask.any())

    def offset_slices(self, other: Slab) -> float:
        """Slices (positive: this slab is higher) between this slab's bottom and ``other``'s;
        NaN when either is empty."""
        return round((self.bottom_mm - other.bottom_mm) / self.slice_mm, 3)


def place_slab(red_nucleus: NDArray[np.bool_], affine: NDArray[np.float64], n_slices: int) -> Slab:
    """The ``n_slices`` axial slices just below ``red_nucleus`` (X, Y, Z, any storage order).

    ``affine`` (4, 4) maps voxels to world mm (RAS+). The slices are those of the grid's
    axis closest to world z, counted from the inferior end, as ``slab_below`` does in RAS.
    """
    if n_slices < 1:
        raise ValueError(f"n_slices must be >= 1, got {n_slices}")
    red_nucleus = np.asarray(red_nucleus, dtype=bool)
    axis = axial_axis(affine)
    ascending = affine[2, axis] > 0  # the axis runs inferior to superior
    canonical = np.moveaxis(red_nucleus, axis, -1)
    if not ascending:
        canonical = canonical[..., ::-1]
    depth = canonical.shape[-1]
    slices = slab_below(canonical, n_slices)
    mask = np.zeros(red_nucleus.shape, dtype=bool)
    slice_mm = float(np.linalg.norm(affine[:3, axis]))
    if not slices:
        return Slab(mask, float("nan"), float("nan"), slice_mm, False)
    stored = [k if ascending else depth - 1 - k for k in slices]
    index: list[slice | list[int]] = [slice(None)] * 3
    index[axis] = stored
    mask[tuple(index)] = True
    centre = (np.array(red_nucleus.shape, dtype=float) - 1) / 2

    def world_z(k: int) -> float:
        voxel = centre.copy()
        voxel[axis] = k
        return float(affine[2, :3] @ voxel + affine[2, 3])

    heights = sorted(world_z(k) for k in stored)
    occupied = np.flatnonzero(canonical.any(axis=(0, 1)))
    touches = slices[0] == 0 or len(slices) < n_slices or int(occupied[-1]) == depth - 1
    return Slab(mask, heights[0], heights[-1], slice_mm, bool(touches))


def slices_for(slab_mm: float, slice_mm: float) -> int:
    """Whole slices of ``slice_mm`` (mm) nearest a slab of ``slab_mm`` (mm), at least one;
    a half rounds up (3 mm of 1.2 mm slices: 3)."""
    if slab_mm <= 0 or slice_mm <= 0:
        raise ValueError(f"slab and slice thickness must be > 0 mm, got {slab_mm}, {slice_mm}")
    # A half rounds up even when a float32 header stores 1.2 mm as 1.2000000477 mm.
    return max(1, math.floor(slab_mm / slice_mm + 0.5 + 1e-4))


@dataclass(frozen=True)
class SlabRule:
    """How the slab is placed: ``slab_mm`` (mm) of axial slices below the ``reference``
    label (RN), in whole native slices (``slices_for``)."""

    slab_mm: float = 3.0
    reference: str = "RN"

    def __post_init__(self) -> None:
        if self.slab_mm <= 0:
            raise ValueError(f"slab_mm must be > 0, got {self.slab_mm}")

    def place(self, labels: Mapping[str, NDArray[np.bool_]], affine: NDArray) -> Slab | None:
        """The slab below ``labels[reference]``, or None when there is no such label."""
        if self.reference not in labels:
            return None
        slice_mm = float(np.linalg.norm(affine[:3, axial_axis(affine)]))
        return place_slab(labels[self.reference], affine, slices_for(self.slab_mm, slice_mm))
