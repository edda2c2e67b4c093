"""Implicit model of the human midbrain at the level of the substantia nigra.

Every structure is a soft membership field in [0, 1] evaluated at anatomical coordinates
in mm (RAS: +x right, +y anterior, +z superior; origin on the midline at the centre of
the SN's craniocaudal extent). The phantom generator places this anatomy in the scanner
with a per-subject pose, so the same code serves any grid, resolution and orientation.

Geometry (PHANTOM.md): the SN is a crescent slab curving from anteromedial to
posterolateral, behind the crus cerebri, centroid about 8 mm from the midline; the
SNpc is its dorsolateral part; nigrosome-1 a small comma in the dorsolateral caudal
third; the red nucleus sits dorsomedially above the SN's middle; the subthalamic nucleus,
an iron-rich lens, sits dorsolateral to the SN's lateral end, above the RN's lower part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import special

from sn_platform.phantom.arrays import FloatArray

# Centre (x, y) in mm of the arcs that the SN and crus cerebri follow: posterior to both.
ARC_CENTRE_MM = (0.0, -5.0)
# Width (mm) of the logistic edge that turns a signed distance into partial volume.
EDGE_MM = 0.1
SIDES = {"right": 1.0, "left": -1.0}


def soft_inside(signed_distance_mm: FloatArray, edge_mm: float = EDGE_MM) -> FloatArray:
    """Partial-volume membership from a signed distance (mm, negative inside); a wider
    ``edge_mm`` blends a tissue into its surroundings."""
    return _soft_step(-signed_distance_mm, edge_mm)


@dataclass(frozen=True)
class SideAnatomy:
    """Shape parameters of one side's nigral complex (all lengths in mm, angles in rad).

    The SN occupies ``a^2 + b^4 + c^4 < 1`` in arc coordinates: ``a`` across the slab
    (radial, negative = dorsal), ``b`` along the arc (negative = lateral), ``c``
    craniocaudal (negative = caudal). The subthalamic nucleus (STN) is centred at
    ``stn_angle`` and ``stn_radius`` on the same arc and at height ``stn_centre_z``;
    ``stn_radii`` are its semi-axes along the arc, across it and craniocaudally.
    """

    sn_radius: float
    sn_thickness: float
    sn_angle_lateral: float
    sn_angle_medial: float
    sn_height: float
    sn_centre_z: float
    snpc_volume_mm3: float
    pd_lateral_caudal_loss: float
    nigrosome_present: bool
    nigrosome_size: tuple[float, float, float]
    red_nucleus_radii: tuple[float, float, float]
    red_nucleus_centre: tuple[float, float, float]
    stn_angle: float
    stn_radius: float
    stn_centre_z: float
    stn_radii: tuple[float, float, float]


@dataclass(frozen=True)
class ArcCoordinates:
    """Normalised arc coordinates (a, b, c) of every point, and the radius in mm."""

    a: FloatArray
    b: FloatArray
    c: FloatArray
    radius_mm: FloatArray
    angle: FloatArray


def arc_coordinates(u: FloatArray, side: float, anatomy: SideAnatomy) -> ArcCoordinates:
    """Arc coordinates of anatomical points ``u`` (N, 3) mm for one side (+1 right, -1 left)."""
    x = side * u[:, 0] - ARC_CENTRE_MM[0]
    y = u[:, 1] - ARC_CENTRE_MM[1]
    radius = np.hypot(x, y)
    angle = np.arctan2(y, x)
    half_span = 0.5 * (anatomy.sn_angle_medial - anatomy.sn_angle_lateral)
    mid_angle = 0.5 * (anatomy.sn_angle_medial + anatomy.sn_angle_lateral)
    return ArcCoordinates(
        a=(radius - anatomy.sn_radius) / (0.5 * anatomy.sn_thickness),
        b=(angle - mid_angle) / half_span,
        c=(u[:, 2] - anatomy.sn_centre_z) / (0.5 * anatomy.sn_height),
        radius_mm=radius,
        angle=angle,
    )


def substantia_nigra_distance(arc: ArcCoordinates, anatomy: SideAnatomy) -> FloatArray:
    """Approximate signed distance (mm) to the SN surface (negative inside)."""
    level = np.sqrt(arc.a**2 + arc.b**4 + arc.c**4)
    return (level - 1.0) * 0.5 * anatomy.sn_thickness


def ellipsoid_distance(
    u: FloatArray, centre: tuple[float, float, float], radii: tuple[float, float, float]
) -> FloatArray:
    """Signed distance (mm) to an axis-aligned ellipsoid, exact to first order at its surface.

    The level ``|(u - centre) / radii|`` is divided by its gradient's norm, which lies
    between ``1 / max(radii)`` and ``1 / min(radii)``; so shells offset from the surface
    keep their thickness on elongated ellipsoids too.
    """
    level = np.zeros(u.shape[0])
    slope = np.zeros(u.shape[0])
    for k in range(3):
        scaled = u[:, k] - centre[k]
        scaled /= radii[k]
        level += scaled**2
        scaled /= radii[k]
        slope += scaled**2
    np.sqrt(level, out=level)
    np.sqrt(slope, out=slope)
    slope /= np.maximum(level, 1e-12)
    np.clip(slope, 1.0 / max(radii), 1.0 / min(radii), out=slope)
    level -= 1.0
    return level / slope


def snpc_membership(
    arc: ArcCoordinates,
    sn_inside: NDArray[np.bool_],
    sn_soft: FloatArray,
    anatomy: SideAnatomy,
    voxel_volume_mm3: float,
    texture: FloatArray,
) -> FloatArray:
    """Soft SNpc membership: the dorsolateral part of the SN of the sampled volume.

    The SNpc is the top ``snpc_volume_mm3`` of SN voxels ranked by a dorsolateral score.
    In PD the part with the highest lateral-caudal score is lost first (BMC Neurol 2020).
    """
    if not sn_inside.any():
        return np.zeros_like(sn_soft)
    dorsolateral = -arc.a - 0.35 * arc.b + 0.25 * texture
    loss = anatomy.pd_lateral_caudal_loss
    healthy_voxels = anatomy.snpc_volume_mm3 / (1.0 - loss) / voxel_volume_mm3
    keep_fraction = float(np.clip(healthy_voxels / sn_inside.sum(), 0.02, 0.98))
    threshold = np.quantile(dorsolateral[sn_inside], 1.0 - keep_fraction)
    healthy = sn_soft * _soft_step(dorsolateral - threshold, 0.08)
    if loss <= 0.0:
        return healthy
    lateral_caudal = -arc.b - arc.c
    in_healthy = sn_inside & (dorsolateral >= threshold)
    loss_threshold = np.quantile(lateral_caudal[in_healthy], 1.0 - loss)
    return healthy * _soft_step(loss_threshold - lateral_caudal, 0.05)


def nigrosome_distance(arc: ArcCoordinates, u_z: FloatArray, anatomy: SideAnatomy) -> FloatArray:
    """Signed distance (mm) to nigrosome-1: a bent ellipsoid, dorsolateral, caudal third."""
    thickness, length, height = anatomy.nigrosome_size
    radius_n1 = anatomy.sn_radius - 0.22 * anatomy.sn_thickness
    span = anatomy.sn_angle_medial - anatomy.sn_angle_lateral
    angle_n1 = anatomy.sn_angle_lateral + 0.3 * span
    z_n1 = anatomy.sn_centre_z - 0.32 * anatomy.sn_height
    dz = u_z - z_n1
    # The comma bends towards the dorsal side with height.
    dr = arc.radius_mm - radius_n1 + 0.15 * dz**2
    ds = (arc.angle - angle_n1) * radius_n1
    level = np.sqrt(
        (dr / (0.5 * thickness)) ** 2 + (ds / (0.5 * length)) ** 2 + (dz / (0.5 * height)) ** 2
    )
    return (level - 1.0) * 0.5 * thickness


def subthalamic_distance(u: FloatArray, side: float, anatomy: SideAnatomy) -> FloatArray:
    """Signed distance (mm) to the subthalamic nucleus: a lens whose long axis follows the arc."""
    x = side * u[:, 0] - ARC_CENTRE_MM[0] - anatomy.stn_radius * np.cos(anatomy.stn_angle)
    y = u[:, 1] - ARC_CENTRE_MM[1] - anatomy.stn_radius * np.sin(anatomy.stn_angle)
    cos, sin = np.cos(anatomy.stn_angle), np.sin(anatomy.stn_angle)
    local = np.stack([cos * y - sin * x, cos * x + sin * y, u[:, 2] - anatomy.stn_centre_z], 1)
    return ellipsoid_distance(local, (0.0, 0.0, 0.0), anatomy.stn_radii)


def crus_distance(arc: ArcCoordinates, u_z: FloatArray, anatomy: SideAnatomy) -> FloatArray:
    """Signed distance (mm) to the crus cerebri reference band, anterolateral to the SN."""
    inner = anatomy.sn_radius + 0.5 * anatomy.sn_thickness + 1.0
    radial = (arc.radius_mm - (inner + 1.75)) / 1.75
    angular = (arc.angle - np.deg2rad(42.0)) / np.deg2rad(24.0)
    axial = (u_z - anatomy.sn_centre_z) / 6.0
    level = np.sqrt(radial**2 + angular**4 + axial**4)
    return (level - 1.0) * 1.75


def peduncle_distance(arc: ArcCoordinates, anatomy: SideAnatomy) -> FloatArray:
    """Signed distance (mm) to the whole cerebral peduncle (white matter), any height."""
    inner = anatomy.sn_radius + 0.5 * anatomy.sn_thickness - 0.5
    half_width = 3.5
    radial = (arc.radius_mm - (inner + half_width)) / half_width
    angular = (arc.angle - np.deg2rad(45.0)) / np.deg2rad(45.0)
    level = np.sqrt(radial**2 + angular**6)
    return (level - 1.0) * half_width


def midbrain_distance(u: FloatArray) -> FloatArray:
    """Signed distance (mm) to the midbrain's tegmental and tectal outline."""
    offset = (u[:, :2] - np.array([0.0, -4.0])) / np.array([14.0, 11.0])
    return (np.linalg.norm(offset, axis=1) - 1.0) * 11.0


def interpeduncular_distance(u: FloatArray) -> FloatArray:
    """Signed distance (mm) to the interpeduncular cistern (CSF, anterior midline)."""
    offset = (u[:, :2] - np.array([0.0, 10.0])) / np.array([3.0, 5.5])
    return (np.linalg.norm(offset, axis=1) - 1.0) * 3.0


def aqueduct_distance(u: FloatArray) -> FloatArray:
    """Signed distance (mm) to the cerebral aqueduct (CSF, posterior midline)."""
    return np.hypot(u[:, 0], u[:, 1] + 11.0) - 1.1


def ambient_cistern_distance(u: FloatArray) -> FloatArray:
    """Signed distance (mm) to the CSF ring around the midbrain (ambient cistern)."""
    offset = (u[:, :2] - np.array([0.0, -3.0])) / np.array([18.0, 15.0])
    return (np.linalg.norm(offset, axis=1) - 1.0) * 15.0


def vessel_distance(
    u: FloatArray, radius_mm: float, angle_offset: float, side: float
) -> FloatArray:
    """Signed distance (mm) to a vein winding around the peduncle (basal vein of Rosenthal)."""
    x = side * u[:, 0]
    y = u[:, 1] - ARC_CENTRE_MM[1]
    path_radius = 20.0 + 1.2 * np.sin(0.25 * u[:, 2] + angle_offset)
    centre_angle = np.deg2rad(30.0) + 0.05 * u[:, 2]
    ring = np.hypot(x, y) - path_radius
    angle = np.arctan2(y, x) - centre_angle
    # A tube that follows a ring segment tilted through the slab.
    return np.where(np.abs(angle) < np.deg2rad(55.0), np.abs(ring) - radius_mm, 10.0)


def _soft_step(value: FloatArray, width: float) -> FloatArray:
    """Logistic step from 0 (value << 0) to 1 (value >> 0) over ``width``."""
    return np.asarray(special.expit(value / width))
