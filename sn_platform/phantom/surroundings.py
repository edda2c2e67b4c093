"""Implicit anatomy around the midbrain: head outline, cerebrum, cerebellum, brainstem.

Same coordinates as ``anatomy`` (mm, RAS, origin at the SN centre); paired structures are
given for the right side and mirrored. Sizes are those of an adult head at the level of
the midbrain (PHANTOM.md, field of view): the slab runs from the pons (below, with the
middle cerebellar peduncles and the fourth ventricle) to the thalami (above, with the
third ventricle); the temporal lobes lie lateral to the ambient cistern and the
cerebellum behind the brainstem. Every structure is a signed distance (negative inside).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sn_platform.phantom.anatomy import ellipsoid_distance
from sn_platform.phantom.arrays import FloatArray


@dataclass(frozen=True)
class Ellipsoid:
    """Axis-aligned ellipsoid: centre and semi-axes (mm); right side for paired ones."""

    centre_mm: tuple[float, float, float]
    radii_mm: tuple[float, float, float]

    def mirrored(self, side: float) -> Ellipsoid:
        """The same ellipsoid on ``side`` (+1 right, -1 left)."""
        x, y, z = self.centre_mm
        return Ellipsoid((side * x, y, z), self.radii_mm)

    def distance(self, u: FloatArray) -> FloatArray:
        """Signed distance (mm) of points ``u`` (N, 3) mm."""
        return ellipsoid_distance(u, self.centre_mm, self.radii_mm)

    def half_extent_mm(self, rotation: FloatArray) -> FloatArray:
        """Half-size (3,) mm along each world axis once rotated by ``rotation`` (3, 3): the
        distance from the centre to the rotated ellipsoid's tangent planes normal to it."""
        return np.sqrt(((rotation * np.asarray(self.radii_mm)) ** 2).sum(axis=1))


@dataclass(frozen=True)
class HeadAnatomy:
    """One subject's head outline.

    Parameters
    ----------
    brain : the brain's outer surface (mm)
    csf_gap_mm : subarachnoid CSF between brain and skull (mm)
    scalp_skull_mm : thickness of the low-signal skull and scalp band (mm)
    gyral_phases : phases (rad) of the folding pattern of the cortical ribbon
    """

    brain: Ellipsoid
    csf_gap_mm: float
    scalp_skull_mm: float
    gyral_phases: tuple[float, float, float]

    @property
    def outline(self) -> Ellipsoid:
        """The scalp's outer surface (mm): the brain plus CSF, skull and scalp."""
        margin = self.csf_gap_mm + self.scalp_skull_mm
        x, y, z = self.brain.radii_mm
        return Ellipsoid(self.brain.centre_mm, (x + margin, y + margin, z + margin))


TEMPORAL_LOBE = Ellipsoid((44.0, -4.0, -6.0), (20.0, 40.0, 24.0))
TEMPORAL_WHITE_MATTER = Ellipsoid((45.0, -4.0, -3.0), (11.0, 30.0, 14.0))
TEMPORAL_HORN = Ellipsoid((32.5, -10.0, -4.0), (2.0, 13.0, 2.5))
HIPPOCAMPUS = Ellipsoid((27.5, -12.0, -8.0), (4.5, 17.0, 5.0))
CEREBELLAR_HEMISPHERE = Ellipsoid((24.0, -46.0, -32.0), (26.0, 28.0, 22.0))
CEREBELLAR_WHITE_MATTER = Ellipsoid((18.0, -42.0, -30.0), (9.0, 13.0, 9.0))
VERMIS = Ellipsoid((0.0, -38.0, -20.0), (8.0, 17.0, 14.0))
PONS = Ellipsoid((0.0, 2.0, -26.0), (17.0, 13.0, 20.0))
FOURTH_VENTRICLE = Ellipsoid((0.0, -15.0, -23.0), (7.0, 3.0, 10.0))
THALAMUS = Ellipsoid((11.0, -14.0, 22.0), (9.0, 15.0, 10.0))
THIRD_VENTRICLE = Ellipsoid((0.0, -2.0, 19.0), (2.0, 14.0, 10.0))
# Middle cerebellar peduncle: a thick tube from the side of the pons into the hemisphere.
MCP_START_MM = (12.0, -6.0, -20.0)
MCP_END_MM = (22.0, -28.0, -26.0)
MCP_RADIUS_MM = 6.0
# Basilar artery: on the front of the pons, up to its bifurcation below the midbrain.
BASILAR_CENTRE_MM = (0.0, 15.5)
BASILAR_RADIUS_MM = 1.6
BASILAR_TOP_MM = -6.0
# Craniocaudal extent (mm) of the midbrain and its cisterns: the pons is below, the
# diencephalon above.
MIDBRAIN_LEVELS_MM = (-11.0, 11.0)
PEDUNCLE_LEVELS_MM = (-13.0, 12.0)
AQUEDUCT_LEVELS_MM = (-14.0, 11.0)
INTERPEDUNCULAR_LEVELS_MM = (-10.0, 9.0)
# Shell (mm) of CSF around the cerebellum (tentorium, cisterns) and the pons.
CISTERN_MM = 1.5
PREPONTINE_CISTERN_MM = 3.0
# Folding of the cortical ribbon: wavelengths (mm) along x, y and z.
GYRAL_WAVELENGTHS_MM = (22.0, 18.0, 14.0)


def cortex_depth_mm(u: FloatArray, head: HeadAnatomy) -> FloatArray:
    """Depth (mm) of the grey-white boundary below the brain surface: 0.7-5.3 mm, folded."""
    waves = [
        np.sin(2.0 * np.pi * u[:, k] / GYRAL_WAVELENGTHS_MM[k] + head.gyral_phases[k])
        for k in range(3)
    ]
    return 3.0 + 1.5 * waves[0] * waves[1] + 0.8 * waves[2]


def white_matter_core_distance(u: FloatArray, head: HeadAnatomy) -> FloatArray:
    """Signed distance (mm) to the brain below its cortical ribbon."""
    return head.brain.distance(u) + cortex_depth_mm(u, head)


def capped(distance_mm: FloatArray, u_z: FloatArray, levels_mm: tuple[float, float]) -> FloatArray:
    """Signed distance (mm) to a structure cut to the heights ``levels_mm`` (bottom, top)."""
    bottom, top = levels_mm
    return np.maximum(distance_mm, np.maximum(bottom - u_z, u_z - top))


def capsule_distance(
    u: FloatArray,
    start_mm: tuple[float, float, float],
    end_mm: tuple[float, float, float],
    radius_mm: float,
) -> FloatArray:
    """Signed distance (mm) to a tube of ``radius_mm`` around a segment, rounded ends."""
    start, axis = np.asarray(start_mm), np.asarray(end_mm) - np.asarray(start_mm)
    along = np.clip((u - start) @ axis / (axis @ axis), 0.0, 1.0)
    nearest = start + along[:, None] * axis
    return np.sqrt(((u - nearest) ** 2).sum(axis=1)) - radius_mm


def middle_cerebellar_peduncle_distance(u: FloatArray, side: float) -> FloatArray:
    """Signed distance (mm) to one middle cerebellar peduncle (+1 right, -1 left)."""
    start = (side * MCP_START_MM[0], *MCP_START_MM[1:])
    end = (side * MCP_END_MM[0], *MCP_END_MM[1:])
    return capsule_distance(u, start, end, MCP_RADIUS_MM)


def basilar_artery_distance(u: FloatArray) -> FloatArray:
    """Signed distance (mm) to the basilar artery (vertical, in the prepontine cistern)."""
    x, y = BASILAR_CENTRE_MM
    tube = np.hypot(u[:, 0] - x, u[:, 1] - y) - BASILAR_RADIUS_MM
    return np.maximum(tube, u[:, 2] - BASILAR_TOP_MM)
