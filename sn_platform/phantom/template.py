"""The real brain the phantom is built on: the MNI ICBM152 2009a symmetric template.

The template (T1 and its GM and WM maps, 1 mm; Fonov et al. 2009, 2011; licence in
nilearn's ``datasets/description/icbm152_2009.rst``) ships inside the ``nilearn`` wheel
and is read from its package data without importing nilearn. From it come the brain,
its CSF spaces (ventricles, cisterns, sulci: dark on T1), the cerebellum, brainstem and
temporal lobes; scalp and skull, which the skull-stripped template lacks, are a band
around the brain, and deep non-brain tissue inside the head (skull base, sinuses) is
bone. Each subject sees the template through its own smooth deformation and scale
(``TemplateHead``), so no two subjects share anatomy.

Coordinates: anatomical ``u`` (mm, RAS, origin at the SN centre on the midline, as in
``anatomy``) map to template (MNI) mm as ``m = MIDBRAIN_ORIGIN_MNI + scale * (u + d(u))``,
with ``d`` a large-scale deformation that fades out towards the midbrain, so the nuclei
drawn at ``u`` stay on the template's own midbrain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import lru_cache

import nibabel as nib
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from sn_platform.data.templates import mni_template_path
from sn_platform.phantom.arrays import FloatArray
from sn_platform.phantom.regions import AnatomicalBox

# Where the anatomical origin (the SN centre on the midline) lies in MNI mm: the SN
# centroids then land at about (+/-9, -18, -15), the RN at (+/-5, -19, -11) and the crus
# on the template's cerebral peduncles (the chi-separation atlas centroids, PHANTOM.md;
# checked against the JHU white-matter labels in tests/phantom/test_template.py).
MIDBRAIN_ORIGIN_MNI = (0.0, -21.0, -15.0)
# T1 intensities (of 1) of CSF and of the darkest grey matter: CSF fraction 1 at or below
# the first, 0 at or above the second (medians measured on the template: CSF 0.27, GM 0.66,
# WM 0.87).
T1_CSF, T1_GREY = 0.27, 0.62
# Radius (mm) of the closing that turns the brain into the inside of the skull.
SKULL_CLOSING_MM = 10.0
# The large-scale deformation fades out within this distance (mm) of the midbrain.
DEFORMATION_TAPER_MM = 20.0


@dataclass(frozen=True)
class TemplateHead:
    """One subject's head drawn from the template.

    Parameters
    ----------
    scale : template mm per subject mm along x, y, z (> 1: a brain smaller than MNI's)
    deformation_seed : seed of the large-scale smooth deformation
    deformation_mm : SD (mm) of the large-scale deformation's plane-wave amplitudes
    csf_gap_mm : subarachnoid CSF between brain and skull (mm)
    scalp_skull_mm : thickness of the low-signal skull and scalp band (mm)
    """

    scale: tuple[float, float, float]
    deformation_seed: int
    deformation_mm: float
    csf_gap_mm: float
    scalp_skull_mm: float


@dataclass(frozen=True)
class TemplateTissues:
    """Tissue fractions and distances at template points, each (n,).

    ``grey`` and ``white`` are the fractions of the voxel that are GM and WM (in the brain,
    the rest is CSF); ``brain_distance_mm``
    the distance outside the brain (0 inside) and ``skull_distance_mm`` outside the
    inner surface of the skull.
    """

    grey: FloatArray
    white: FloatArray
    brain_distance_mm: FloatArray
    skull_distance_mm: FloatArray

    def interpolated(
        self,
        lattice_shape: tuple[int, ...],
        fine: Sequence[NDArray[np.intp]],
        lattice: Sequence[NDArray[np.intp]],
    ) -> TemplateTissues:
        """These values, sampled on a lattice of grid indices (``lattice`` per axis, values
        in C order of ``lattice_shape``), linearly interpolated to the indices ``fine``."""

        def upsample(values: FloatArray) -> FloatArray:
            volume = values.reshape(lattice_shape)
            for axis, (targets, knots) in enumerate(zip(fine, lattice, strict=True)):
                if targets.size == knots.size:
                    continue
                low = np.clip(np.searchsorted(knots, targets, side="right") - 1, 0, knots.size - 2)
                weight = (targets - knots[low]) / (knots[low + 1] - knots[low])
                shape = [1, 1, 1]
                shape[axis] = -1
                weight = weight.reshape(shape)
                volume = (
                    np.take(volume, low, axis) * (1.0 - weight)
                    + np.take(volume, low + 1, axis) * weight
                )
            return volume.ravel()

        return TemplateTissues(*(upsample(getattr(self, f.name)) for f in fields(self)))


@dataclass(frozen=True)
class Template:
    """The template's maps on its 1 mm grid, float32 (X, Y, Z), its voxel-to-MNI affine,
    and the MNI bounds (lower, upper) mm of the inside of the skull."""

    affine: FloatArray
    skull_bounds_mni: tuple[FloatArray, FloatArray]
    grey: NDArray[np.float32]
    white: NDArray[np.float32]
    brain_distance_mm: NDArray[np.float32]
    skull_distance_mm: NDArray[np.float32]

    def tissues_at(self, mni_mm: FloatArray) -> TemplateTissues:
        """Trilinear tissue fractions and distances at MNI points ``mni_mm`` (n, 3) mm.

        Outside the template's grid there is no brain and the distances are large (air).
        """
        inverse = np.linalg.inv(self.affine).astype(np.float32)
        voxels = inverse[:3, :3] @ mni_mm.T.astype(np.float32) + inverse[:3, 3:]

        def sample(volume: NDArray[np.float32], outside: float) -> FloatArray:
            values = ndimage.map_coordinates(volume, voxels, order=1, cval=outside)
            return np.asarray(values, dtype=np.float64)

        far = 1e3
        return TemplateTissues(
            grey=sample(self.grey, 0.0),
            white=sample(self.white, 0.0),
            brain_distance_mm=sample(self.brain_distance_mm, far),
            skull_distance_mm=sample(self.skull_distance_mm, far),
        )


@lru_cache(maxsize=1)
def load_template() -> Template:
    """The template's brain, tissue fractions and distance maps (once per process)."""
    images = {name: nib.nifti1.load(mni_template_path(name)) for name in ("t1", "gm", "wm")}
    t1, grey_prob, white_prob = (
        np.asarray(images[name].dataobj, dtype=np.float32) / 255.0 for name in images
    )
    brain = (t1 > 0).astype(np.float32)
    csf = np.clip((T1_GREY - t1) / (T1_GREY - T1_CSF), 0.0, 1.0) * brain
    tissue = grey_prob + white_prob
    # Brain that is neither dark on T1 nor classified (thin edges): grey matter.
    grey_share = np.where(tissue > 1e-3, grey_prob / np.maximum(tissue, 1e-3), 1.0)
    grey = (1.0 - csf) * grey_share * brain
    white = (1.0 - csf) * (1.0 - grey_share) * brain
    inside = brain > 0
    brain_distance = ndimage.distance_transform_edt(~inside)
    near_brain = brain_distance < SKULL_CLOSING_MM
    skull_inside = ndimage.binary_fill_holes(
        ndimage.distance_transform_edt(near_brain) > SKULL_CLOSING_MM
    )
    skull_inside |= inside
    affine = np.asarray(images["t1"].affine, dtype=np.float64)
    skull_voxels = np.argwhere(skull_inside)
    corners = np.array([skull_voxels.min(0), skull_voxels.max(0)])
    corners_mni = corners @ affine[:3, :3].T + affine[:3, 3]
    return Template(
        affine=affine,
        skull_bounds_mni=(corners_mni.min(0), corners_mni.max(0)),
        grey=grey.astype(np.float32),
        white=white.astype(np.float32),
        brain_distance_mm=brain_distance.astype(np.float32),
        skull_distance_mm=ndimage.distance_transform_edt(~skull_inside).astype(np.float32),
    )


def anatomical_bounds_mm(template: Template, head: TemplateHead) -> AnatomicalBox:
    """Anatomical box (mm) holding the subject's whole head: the skull's inside, the scalp
    band and the largest deformation."""
    lower, upper = (
        (bound - np.asarray(MIDBRAIN_ORIGIN_MNI)) / np.asarray(head.scale)
        for bound in template.skull_bounds_mni
    )
    margin = head.csf_gap_mm + head.scalp_skull_mm + 6.0 * head.deformation_mm
    centre, half = 0.5 * (lower + upper), 0.5 * (upper - lower) + margin
    return AnatomicalBox((centre[0], centre[1], centre[2]), (half[0], half[1], half[2]))


def template_coordinates(u: FloatArray, head: TemplateHead) -> FloatArray:
    """MNI mm (n, 3) of anatomical points ``u`` (n, 3) mm of a subject with ``head``."""
    rng = np.random.default_rng(head.deformation_seed)
    displacement = np.zeros_like(u)
    for _ in range(3):
        wave_vector = rng.normal(0.0, 1.0, 3)
        wave_vector *= 2.0 * np.pi / (np.linalg.norm(wave_vector) * rng.uniform(60.0, 120.0))
        amplitude = rng.normal(0.0, head.deformation_mm, 3)
        displacement += amplitude * np.sin(u @ wave_vector + rng.uniform(0, 2 * np.pi))[:, None]
    taper = -np.expm1(-(u**2).sum(axis=1) / (2.0 * DEFORMATION_TAPER_MM**2))
    return np.asarray(MIDBRAIN_ORIGIN_MNI) + np.asarray(head.scale) * (
        u + taper[:, None] * displacement
    )
