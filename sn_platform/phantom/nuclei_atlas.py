"""The midbrain nuclei in MNI space: the phantom's SN, RN and crus, averaged over subjects.

The atlas localiser maps this label map onto a subject through its registration to the
MNI template (``sn_platform.inference.atlas``); the cascade falls back on it where the
network's masks disagree with the anatomy. It is built from the phantom's own anatomy
(``anatomy``, placed on the template by ``template``), never from a test brain:

    python -m sn_platform.phantom.nuclei_atlas  # rewrites sn_platform/data/atlases/

Each voxel (0.5 mm) takes the label whose membership, averaged over ``ATLAS_SUBJECTS``
phantom subjects (their anatomy, deformation and scale; no pose), is largest, if at
least one half: a maximum-probability atlas.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sn_platform.data.io import write_nifti
from sn_platform.data.templates import NUCLEI_ATLAS_LABELS, nuclei_atlas_path
from sn_platform.phantom import anatomy as anat
from sn_platform.phantom.arrays import FloatArray
from sn_platform.phantom.generator import sample_subject_plan
from sn_platform.phantom.plan import SubjectPlan
from sn_platform.phantom.regions import smooth_deformation_mm
from sn_platform.phantom.settings import PhantomConfig
from sn_platform.phantom.template import TemplateHead, template_coordinates

ATLAS_SUBJECTS = 24
ATLAS_SPACING_MM = 0.5
# The atlas's MNI box (mm): the SN, RN and crus of every subject lie well inside it.
ATLAS_LOWER_MNI_MM = (-24.0, -40.0, -30.0)
ATLAS_UPPER_MNI_MM = (24.0, 0.0, 0.0)
# Anatomical sampling grid (mm) around the SN centre, finer than the atlas's voxels.
SAMPLING_HALF_EXTENT_MM = (22.0, 20.0, 14.0)
SAMPLING_STEP_MM = 0.25


def nuclei_points_in_mni(plan: SubjectPlan) -> dict[str, dict[str, FloatArray]]:
    """MNI points (n, 3) mm inside one MNI-head subject's SN, RN and CC, by label then
    side, sampled every ``SAMPLING_STEP_MM`` around the midbrain and deformed as the
    renderer deforms them."""
    if not isinstance(plan.head, TemplateHead):
        raise ValueError("nuclei_points_in_mni needs a subject of the MNI head (head=mni)")
    axes = [np.arange(-h, h, SAMPLING_STEP_MM) for h in SAMPLING_HALF_EXTENT_MM]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    u = grid + smooth_deformation_mm(grid, plan.pose.deformation_seed)
    mni = template_coordinates(u, plan.head)
    points: dict[str, dict[str, FloatArray]] = {label: {} for label in NUCLEI_ATLAS_LABELS}
    for name, sign in anat.SIDES.items():
        side = plan.sides[name]
        arc = anat.arc_coordinates(u, sign, side)
        points["SN"][name] = mni[anat.substantia_nigra_distance(arc, side) < 0]
        inside_rn = anat.ellipsoid_distance(u, side.red_nucleus_centre, side.red_nucleus_radii)
        points["RN"][name] = mni[inside_rn < 0]
        points["CC"][name] = mni[anat.crus_distance(arc, u[:, 2], side) < 0]
    return points


def atlas_affine() -> FloatArray:
    """Voxel -> MNI mm (4, 4) of the atlas grid (RAS, ``ATLAS_SPACING_MM``)."""
    affine = np.diag([ATLAS_SPACING_MM] * 3 + [1.0])
    affine[:3, 3] = np.asarray(ATLAS_LOWER_MNI_MM) + ATLAS_SPACING_MM / 2
    return affine


def build_nuclei_atlas(subjects: int = ATLAS_SUBJECTS) -> NDArray[np.uint8]:
    """The maximum-probability label map (X, Y, Z) uint8 on ``atlas_affine``'s grid:
    ``NUCLEI_ATLAS_LABELS`` codes, 0 elsewhere, from ``subjects`` phantom subjects."""
    lower, upper = np.asarray(ATLAS_LOWER_MNI_MM), np.asarray(ATLAS_UPPER_MNI_MM)
    shape = tuple(np.rint((upper - lower) / ATLAS_SPACING_MM).astype(int))
    edges = [lower[i] + ATLAS_SPACING_MM * np.arange(shape[i] + 1) for i in range(3)]
    labels = list(NUCLEI_ATLAS_LABELS)
    membership = np.zeros((len(labels), *shape))
    config = PhantomConfig(subjects=subjects)
    for index in range(subjects):
        points = nuclei_points_in_mni(sample_subject_plan(config, index))
        for k, label in enumerate(labels):
            inside = np.concatenate(list(points[label].values()))
            counts, _ = np.histogramdd(inside, bins=edges)
            membership[k] += counts
    # Points per atlas voxel of a subject's sampling grid: the subject's scale changes it
    # by a few per cent, which the averaging over subjects absorbs.
    membership /= subjects * (ATLAS_SPACING_MM / SAMPLING_STEP_MM) ** 3
    codes = np.asarray([NUCLEI_ATLAS_LABELS[label] for label in labels], dtype=np.uint8)
    best = membership.argmax(axis=0)
    return np.where(membership.max(axis=0) >= 0.5, codes[best], 0).astype(np.uint8)


def main() -> None:
    """Rebuild the shipped atlas file."""
    path = nuclei_atlas_path()
    write_nifti(path, build_nuclei_atlas(), atlas_affine())
    print(f"nuclei_atlas: wrote {path}")


if __name__ == "__main__":
    main()
