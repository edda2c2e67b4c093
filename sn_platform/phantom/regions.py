"""Voxel regions of the scanner grid and the anatomical coordinates of their voxels.

The grid is the site's field of view in RAS order, centred on the world origin (the FOV
centre). The anatomy sits in it with a per-subject pose: ``world = R @ anatomy + shift``
(mm), where ``shift`` is where the SN centre lands. Structures are rendered only inside
their own boxes, so a large field of view costs little more than the head it contains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from sn_platform.phantom.arrays import FloatArray

Box = tuple[slice, slice, slice]


@dataclass(frozen=True)
class Pose:
    """Placement of the anatomy in the scanner.

    Parameters
    ----------
    rotation_deg : rotations about the x, y and z axes (degrees), applied x first
    shift_mm : world position of the anatomical origin (the SN centre) (mm)
    deformation_seed : seed of the smooth random deformation of the midbrain (about 1 mm)
    """

    rotation_deg: tuple[float, float, float]
    shift_mm: tuple[float, float, float]
    deformation_seed: int

    @property
    def rotation(self) -> FloatArray:
        """(3, 3) rotation matrix from anatomical to world axes."""
        ax, ay, az = np.deg2rad(self.rotation_deg)
        rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
        ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
        rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
        return np.asarray(rz @ ry @ rx)


@dataclass(frozen=True)
class Region:
    """A voxel box of the grid and the anatomical coordinates (n, 3) mm of its voxels.

    Voxels are flattened in C order of the box, so ``values.reshape(region.shape)`` puts
    per-voxel values back into the box.
    """

    box: Box
    u: FloatArray

    @property
    def shape(self) -> tuple[int, int, int]:
        """Box shape (voxels)."""
        x, y, z = (s.stop - s.start for s in self.box)
        return (x, y, z)


def grid_axes_mm(
    shape: tuple[int, int, int], voxel_mm: tuple[float, float, float]
) -> list[FloatArray]:
    """World coordinate (mm) of the voxel centres along each RAS axis, centred on 0."""
    return [
        np.asarray((np.arange(n) - 0.5 * (n - 1)) * v, dtype=np.float64)
        for n, v in zip(shape, voxel_mm, strict=True)
    ]


def world_box(
    shape: tuple[int, int, int],
    voxel_mm: tuple[float, float, float],
    lower_mm: FloatArray,
    upper_mm: FloatArray,
) -> Box | None:
    """Voxels whose centres lie in the world box ``[lower, upper]`` (mm), or None if none."""
    box = []
    for axis, low, high in zip(grid_axes_mm(shape, voxel_mm), lower_mm, upper_mm, strict=True):
        inside = np.flatnonzero((axis >= low) & (axis <= high))
        if inside.size == 0:
            return None
        box.append(slice(int(inside[0]), int(inside[-1]) + 1))
    return (box[0], box[1], box[2])


def split_box(box: Box, max_voxels: int) -> list[Box]:
    """``box`` cut along x into slabs of at most ``max_voxels`` (or one sagittal plane).

    Pointwise work done slab by slab keeps every temporary small enough to be recycled
    by the allocator instead of being mapped afresh; x-slabs of a C-ordered box are
    contiguous, so they can be painted in place.
    """
    x, y, z = box
    per_plane = (y.stop - y.start) * (z.stop - z.start)
    step = max(max_voxels // max(per_plane, 1), 1)
    return [(slice(k, min(k + step, x.stop)), y, z) for k in range(x.start, x.stop, step)]


class AnatomicalShape(Protocol):
    """A shape in anatomical mm that a pose can bound: ``AnatomicalBox``, ``Ellipsoid``."""

    @property
    def centre_mm(self) -> tuple[float, float, float]:
        """Anatomical centre (mm)."""
        ...

    def half_extent_mm(self, rotation: FloatArray) -> FloatArray:
        """Half-size (3,) mm along each world axis once rotated by ``rotation`` (3, 3)."""
        ...


@dataclass(frozen=True)
class AnatomicalBox:
    """A box in anatomical mm: its centre and its half-size along each anatomical axis."""

    centre_mm: tuple[float, float, float]
    half_mm: tuple[float, float, float]

    def half_extent_mm(self, rotation: FloatArray) -> FloatArray:
        """Half-size (3,) mm along each world axis once rotated by ``rotation`` (3, 3): the
        sum of the rotated half-axes' projections on that axis (where the corners reach)."""
        return np.abs(rotation) @ np.asarray(self.half_mm)


def world_bounds(
    pose: Pose, shape: AnatomicalShape, margin_mm: float
) -> tuple[FloatArray, FloatArray]:
    """World bounding box (lower, upper) mm of a posed anatomical shape plus a margin."""
    rotation = pose.rotation
    centre = rotation @ np.asarray(shape.centre_mm) + np.asarray(pose.shift_mm)
    half = shape.half_extent_mm(rotation) + margin_mm
    return centre - half, centre + half


def region_coordinates(
    shape: tuple[int, int, int],
    voxel_mm: tuple[float, float, float],
    pose: Pose,
    box: Box,
    deformed: bool,
) -> Region:
    """Anatomical coordinates of the voxels of ``box``; ``deformed`` adds the deformation."""
    indices = [np.arange(part.start, part.stop) for part in box]
    u = lattice_coordinates(shape, voxel_mm, pose, (indices[0], indices[1], indices[2]), deformed)
    return Region(box=box, u=u)


def lattice_coordinates(
    shape: tuple[int, int, int],
    voxel_mm: tuple[float, float, float],
    pose: Pose,
    indices: tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]],
    deformed: bool,
) -> FloatArray:
    """Anatomical coordinates (n, 3) mm of the grid voxels ``indices`` (one index array
    per axis; their outer product, C order); ``deformed`` adds the deformation.

    The rigid part is separable (one 1D axis per world axis), so it costs three additions
    per voxel; the deformation is evaluated only where asked.
    """
    axes = [
        axis[index] - offset
        for axis, index, offset in zip(
            grid_axes_mm(shape, voxel_mm), indices, pose.shift_mm, strict=True
        )
    ]
    rotation = pose.rotation
    sizes = tuple(index.size for index in indices)
    # Column-major, so that each coordinate u[:, k] is contiguous for the distance functions.
    u = np.empty((int(np.prod(sizes)), 3), order="F")
    for k in range(3):
        u[:, k] = (
            (axes[0] * rotation[0, k])[:, None, None]
            + (axes[1] * rotation[1, k])[None, :, None]
            + (axes[2] * rotation[2, k])[None, None, :]
        ).ravel()
    if deformed:
        u += smooth_deformation_mm(u, pose.deformation_seed)
    return u


def smooth_deformation_mm(u: FloatArray, seed: int) -> FloatArray:
    """Displacement (n, 3) mm: four random plane waves of 12-30 mm wavelength, ~1 mm SD.

    A function of the anatomical position, so every region sees the same deformation.
    """
    rng = np.random.default_rng(seed)
    displacement = np.zeros_like(u)
    for _ in range(4):
        wave_vector = rng.normal(0.0, 1.0, 3) * 2.0 * np.pi / rng.uniform(12.0, 30.0)
        amplitude = rng.normal(0.0, 0.5, 3)
        displacement += amplitude * np.sin(u @ wave_vector + rng.uniform(0, 2 * np.pi))[:, None]
    return displacement
