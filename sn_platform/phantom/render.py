"""Render one subject's anatomy into noise-free echo signals, chi and truth labels.

The head comes from the MNI template (``template``), on the same deformed coordinates as
the nuclei, or, for the geometric heads, from ellipsoids: head, temporal lobes and
cerebellum on rigid coordinates, each inside its own bounding box, the brainstem on
deformed ones (the smooth per-subject shape variation). Then the nuclei and the basal
vein, each inside a box around the midbrain.
Pointwise stages go slab by slab. Outside the head the canvas stays air: no signal, chi 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sn_platform.phantom import anatomy as anat
from sn_platform.phantom import surroundings as head
from sn_platform.phantom import tissues
from sn_platform.phantom.acquisition import smooth_noise
from sn_platform.phantom.arrays import BoolArray, FloatArray
from sn_platform.phantom.compositor import Canvas, RegionPainter, Tissue, TissueClass
from sn_platform.phantom.plan import SubjectPlan, TissueParameters
from sn_platform.phantom.regions import (
    AnatomicalBox,
    Box,
    Region,
    lattice_coordinates,
    region_coordinates,
    split_box,
    world_bounds,
    world_box,
)
from sn_platform.phantom.template import (
    TemplateHead,
    TemplateTissues,
    anatomical_bounds_mm,
    load_template,
    template_coordinates,
)

TRUTH_LABELS = ("SN", "SNpc", "N1", "RN", "CC", "STN")
# Anatomical boxes (mm) holding everything painted in them: the brainstem, thalami,
# ventricles and cisterns (the MCPs reach x = 34, y = -34; the pons and its cistern
# z = -49); the nuclei and crura (up to 22 mm from the SN centre); the basal vein's ring
# (radius <= 22 mm around the arc centre).
BRAINSTEM_BOX_MM = AnatomicalBox((0.0, -9.0, -8.0), (35.0, 29.0, 42.0))
NUCLEI_BOX_MM = AnatomicalBox((0.0, 0.0, -1.0), (22.0, 18.0, 15.0))
VEIN_BOX_MM = AnatomicalBox((0.0, -5.0, 0.0), (23.0, 23.0, 12.0))
# The smooth deformation moves structures by up to about 3 mm.
DEFORMATION_MARGIN_MM = 3.0
# Spacing (mm) of the lattice the 1 mm template is sampled on.
TEMPLATE_STEP_MM = 1.0
# Voxels per slab for the head and brainstem (pointwise work, so any slab size).
SLAB_VOXELS = 500_000
# The peduncle's white matter fades into the tegmentum and cisterns over about 2 mm: no
# drawn outline (the crus and nuclei inside it keep sharp edges).
PEDUNCLE_EDGE_MM = 0.5
# The SNpc is 1-3 voxels thick: partial volume and the point-spread function lower its
# measured echo-1 contrast to about 83 % of the tissue's excess over the crus (measured on
# the default cohort), so the tissue excess is raised to make the measured ratio match.
NM_PARTIAL_VOLUME_GAIN = 1.2


@dataclass(frozen=True)
class Layer:
    """A tissue painted inside the union of ellipsoids grown by ``offset_mm``."""

    parts: tuple[head.Ellipsoid, ...]
    offset_mm: float
    tissue: Tissue

    def mirrored(self, side: float) -> Layer:
        """The layer on ``side`` (+1 right, -1 left)."""
        return Layer(tuple(p.mirrored(side) for p in self.parts), self.offset_mm, self.tissue)


TEMPORAL_LOBE_LAYERS = (
    Layer((head.TEMPORAL_LOBE,), 0.0, tissues.GREY_MATTER),
    Layer((head.TEMPORAL_WHITE_MATTER,), 0.0, tissues.WHITE_MATTER),
    Layer((head.TEMPORAL_HORN,), 0.0, tissues.CSF),
    Layer((head.HIPPOCAMPUS,), 0.0, tissues.GREY_MATTER),
)
_HEMISPHERES = tuple(head.CEREBELLAR_HEMISPHERE.mirrored(s) for s in anat.SIDES.values())
CEREBELLUM_LAYERS = (
    Layer((*_HEMISPHERES, head.VERMIS), head.CISTERN_MM, tissues.CSF),
    Layer((*_HEMISPHERES, head.VERMIS), 0.0, tissues.GREY_MATTER),
    Layer(
        tuple(head.CEREBELLAR_WHITE_MATTER.mirrored(s) for s in anat.SIDES.values()),
        0.0,
        tissues.WHITE_MATTER,
    ),
)


@dataclass
class RenderedAnatomy:
    """Noise-free images and truth of one subject on the RAS grid.

    ``canvas`` holds the echo signals (relative to the crus on echo 1) and chi (ppm);
    ``labels`` the truth masks (X, Y, Z); ``vein`` the vein's membership (X, Y, Z), or
    None when the subject has none.
    """

    canvas: Canvas
    labels: dict[str, BoolArray]
    vein: FloatArray | None


def render_anatomy(plan: SubjectPlan, rng: np.random.Generator) -> RenderedAnatomy:
    """Paint the head around the midbrain, then the midbrain; ``rng`` draws texture and vein."""
    site = plan.site
    if isinstance(plan.head, TemplateHead):
        canvas = _template_head_canvas(plan, plan.head)
    else:
        canvas = _geometric_head_canvas(plan, plan.head)
    nuclei = _deformed_region(plan, _canvas_box(canvas, plan, NUCLEI_BOX_MM))
    with canvas.painting(nuclei.box) as painter:
        labels = _paint_nuclei(painter, nuclei, plan, rng)
    return RenderedAnatomy(
        canvas=canvas,
        labels={name: _on_grid(mask, nuclei, site.shape) for name, mask in labels.items()},
        vein=_paint_vein(canvas, plan, rng) if plan.has_vessel else None,
    )


def _new_canvas(plan: SubjectPlan, box: Box) -> Canvas:
    site = plan.site
    return Canvas(box, site.echo_times_ms, site.first_echo_ms, plan.tissue.crus_r2star)


def _template_head_canvas(plan: SubjectPlan, outline: TemplateHead) -> Canvas:
    """The MNI template's head, slab by slab, on deformed coordinates (the same as the
    nuclei's, so they stay on the template's midbrain).

    The template has 1 mm voxels: it is sampled on a lattice of about 1 mm through the
    slab (every ``TEMPLATE_STEP_MM`` along each axis) and linearly interpolated to the
    grid's voxels, a quarter of the work at 0.5 mm in-plane.
    """
    site = plan.site
    template = load_template()
    head_box = anatomical_bounds_mm(template, outline)
    lower, upper = world_bounds(plan.pose, head_box, DEFORMATION_MARGIN_MM)
    box = world_box(site.shape, site.voxel_mm, lower, upper)
    assert box is not None, "PhantomConfig keeps the midbrain, so the head, in the FOV"
    canvas = _new_canvas(plan, box)
    steps = [max(1, round(TEMPLATE_STEP_MM / v)) for v in site.voxel_mm]
    for slab in split_box(canvas.box, SLAB_VOXELS):
        lattice = [_lattice_indices(part, step) for part, step in zip(slab, steps, strict=True)]
        u = lattice_coordinates(
            site.shape, site.voxel_mm, plan.pose, (lattice[0], lattice[1], lattice[2]), True
        )
        sampled = template.tissues_at(template_coordinates(u, outline))
        at = sampled.interpolated(
            tuple(index.size for index in lattice),
            [np.arange(part.start, part.stop) for part in slab],
            lattice,
        )
        with canvas.painting(slab) as painter:
            _paint_template_tissues(painter, at, outline)
    return canvas


def _lattice_indices(part: slice, step: int) -> NDArray[np.intp]:
    """Every ``step``-th index of ``part``, and its last, so the lattice spans the part."""
    indices = np.arange(part.start, part.stop, step)
    return indices if indices[-1] == part.stop - 1 else np.append(indices, part.stop - 1)


def _paint_template_tissues(
    painter: RegionPainter, at: TemplateTissues, outline: TemplateHead
) -> None:
    """Scalp, skull and deep bone inside the head, the CSF gap, then the brain's CSF, GM
    and WM in their fractions (WM over GM over CSF)."""
    gap, band = outline.csf_gap_mm, outline.scalp_skull_mm
    painter.paint_tissue(anat.soft_inside(at.skull_distance_mm - gap - band), tissues.SCALP_SKULL)
    painter.paint_tissue(anat.soft_inside(at.brain_distance_mm - gap), tissues.CSF)
    not_white = np.maximum(1.0 - at.white, 1e-6)
    painter.paint_tissue(np.clip(at.grey / not_white, 0.0, 1.0), tissues.GREY_MATTER)
    painter.paint_tissue(at.white, tissues.WHITE_MATTER)


def _geometric_head_canvas(plan: SubjectPlan, outline: head.HeadAnatomy) -> Canvas:
    """The geometric head: an ellipsoidal head, temporal lobes and cerebellum on rigid
    coordinates, the brainstem on deformed ones, inside the head's box."""
    head_box = _ellipsoids_box(plan, [outline.outline], margin_mm=2.0)
    assert head_box is not None, "PhantomConfig keeps the midbrain, so the head, in the FOV"
    canvas = _new_canvas(plan, head_box)
    _paint_head(canvas, plan, outline)
    for side in anat.SIDES.values():
        _paint_layers(
            canvas, plan, outline, [layer.mirrored(side) for layer in TEMPORAL_LOBE_LAYERS]
        )
    _paint_layers(canvas, plan, outline, CEREBELLUM_LAYERS)
    for slab in split_box(_canvas_box(canvas, plan, BRAINSTEM_BOX_MM), SLAB_VOXELS):
        brainstem = _deformed_region(plan, slab)
        with canvas.painting(brainstem.box) as painter:
            _paint_brainstem(painter, brainstem.u, outline)
    return canvas


def _canvas_box(canvas: Canvas, plan: SubjectPlan, anatomical_box: AnatomicalBox) -> Box:
    """The canvas voxels around a posed anatomical box, deformed."""
    site = plan.site
    lower, upper = world_bounds(plan.pose, anatomical_box, DEFORMATION_MARGIN_MM)
    box = world_box(site.shape, site.voxel_mm, lower, upper)
    box = None if box is None else canvas.within(box)
    assert box is not None, "PhantomConfig keeps the midbrain inside the field of view"
    return box


def _deformed_region(plan: SubjectPlan, box: Box) -> Region:
    """Deformed anatomical coordinates of the voxels of ``box``."""
    site = plan.site
    return region_coordinates(site.shape, site.voxel_mm, plan.pose, box, deformed=True)


def _ellipsoids_box(
    plan: SubjectPlan, parts: Sequence[head.Ellipsoid], margin_mm: float
) -> Box | None:
    """Grid box around posed ellipsoids grown by ``margin_mm``, or None outside the FOV."""
    bounds = [world_bounds(plan.pose, part, margin_mm) for part in parts]
    lower = np.min([low for low, _ in bounds], axis=0)
    upper = np.max([high for _, high in bounds], axis=0)
    return world_box(plan.site.shape, plan.site.voxel_mm, lower, upper)


def _rigid_slabs(canvas: Canvas, plan: SubjectPlan, box: Box | None) -> list[Region]:
    """Rigid coordinates of the canvas voxels of ``box``, slab by slab ([] if none)."""
    box = None if box is None else canvas.within(box)
    if box is None:
        return []
    site = plan.site
    return [
        region_coordinates(site.shape, site.voxel_mm, plan.pose, slab, deformed=False)
        for slab in split_box(box, SLAB_VOXELS)
    ]


def _paint_head(canvas: Canvas, plan: SubjectPlan, outline: head.HeadAnatomy) -> None:
    """Scalp and skull (a low-signal band), subarachnoid CSF, cortex, white matter."""
    for region in _rigid_slabs(canvas, plan, canvas.box):
        brain = outline.brain.distance(region.u)
        with canvas.painting(region.box) as painter:
            scalp = brain - outline.csf_gap_mm - outline.scalp_skull_mm
            painter.paint_tissue(anat.soft_inside(scalp), tissues.SCALP_SKULL)
            painter.paint_tissue(anat.soft_inside(brain - outline.csf_gap_mm), tissues.CSF)
            painter.paint_tissue(anat.soft_inside(brain), tissues.GREY_MATTER)
            white = brain + head.cortex_depth_mm(region.u, outline)
            painter.paint_tissue(anat.soft_inside(white), tissues.WHITE_MATTER)


def _paint_layers(
    canvas: Canvas, plan: SubjectPlan, outline: head.HeadAnatomy, layers: Sequence[Layer]
) -> None:
    """Paint ``layers`` in order, each kept below the cortical ribbon of the brain."""
    outer = layers[0]
    box = _ellipsoids_box(plan, outer.parts, outer.offset_mm + 1.0)
    for region in _rigid_slabs(canvas, plan, box):
        core = head.white_matter_core_distance(region.u, outline)
        with canvas.painting(region.box) as painter:
            for layer in layers:
                union = np.min([part.distance(region.u) for part in layer.parts], axis=0)
                inside = np.maximum(union - layer.offset_mm, core)
                painter.paint_tissue(anat.soft_inside(inside), layer.tissue)


def _paint_brainstem(painter: RegionPainter, u: FloatArray, outline: head.HeadAnatomy) -> None:
    """Pons, its cistern and peduncles, 4th ventricle, midbrain, thalami, 3rd ventricle, basilar.

    Each is kept below the cortical ribbon, which only a small head (head_scale) reaches.
    """
    core = head.white_matter_core_distance(u, outline)

    def paint(distance_mm: FloatArray, tissue: Tissue) -> None:
        painter.paint_tissue(anat.soft_inside(np.maximum(distance_mm, core)), tissue)

    pons = head.PONS.distance(u)
    paint(pons - head.PREPONTINE_CISTERN_MM, tissues.CSF)
    paint(pons, tissues.PONS)
    for side in anat.SIDES.values():
        paint(head.middle_cerebellar_peduncle_distance(u, side), tissues.WHITE_MATTER)
    paint(head.FOURTH_VENTRICLE.distance(u), tissues.CSF)
    levels = head.MIDBRAIN_LEVELS_MM
    paint(head.capped(anat.ambient_cistern_distance(u), u[:, 2], levels), tissues.CSF)
    paint(head.capped(anat.midbrain_distance(u), u[:, 2], levels), tissues.MIDBRAIN_TEGMENTUM)
    for side in anat.SIDES.values():
        paint(head.THALAMUS.mirrored(side).distance(u), tissues.THALAMUS)
    paint(head.THIRD_VENTRICLE.distance(u), tissues.CSF)
    paint(head.basilar_artery_distance(u), tissues.ARTERIAL_BLOOD)


def _nm_contrast_before_blur(measured_contrast: float) -> float:
    return 1.0 + NM_PARTIAL_VOLUME_GAIN * (measured_contrast - 1.0)


@dataclass
class _NucleiScene:
    """What painting the nuclei needs, and the truth labels it collects."""

    painter: RegionPainter
    u: FloatArray
    tissue: TissueParameters
    texture: FloatArray
    voxel_volume_mm3: float
    labels: dict[str, BoolArray]


def _paint_nuclei(
    painter: RegionPainter, region: Region, plan: SubjectPlan, rng: np.random.Generator
) -> dict[str, BoolArray]:
    """Crura, STN, the nigral complex, RN and midline CSF; returns the truth labels (n,)."""
    u, tissue = region.u, plan.tissue
    scene = _NucleiScene(
        painter=painter,
        u=u,
        tissue=tissue,
        texture=smooth_noise(region.shape, (2.0, 2.0, 1.0), 1.0, rng).astype(np.float64).ravel(),
        voxel_volume_mm3=float(np.prod(plan.site.voxel_mm)),
        labels={name: np.zeros(u.shape[0], dtype=bool) for name in TRUTH_LABELS},
    )
    labels = scene.labels
    arcs = {
        name: anat.arc_coordinates(u, sign, plan.sides[name]) for name, sign in anat.SIDES.items()
    }
    sn_soft, rn_soft = {}, {}
    for name, arc in arcs.items():
        side = plan.sides[name]
        rn_soft[name] = anat.soft_inside(
            anat.ellipsoid_distance(u, side.red_nucleus_centre, side.red_nucleus_radii)
        )
        peduncle = head.capped(anat.peduncle_distance(arc, side), u[:, 2], head.PEDUNCLE_LEVELS_MM)
        painter.paint(
            anat.soft_inside(peduncle, PEDUNCLE_EDGE_MM),
            1.0,
            tissue.crus_r2star,
            tissue.crus_chi,
            TissueClass.CEREBRAL_PEDUNCLE,
        )
        labels["CC"] |= anat.crus_distance(arc, u[:, 2], side) < 0
        # Neighbouring nuclei touch but do not overlap: the SN yields to the RN.
        sn = anat.soft_inside(anat.substantia_nigra_distance(arc, side))
        sn_soft[name] = sn * (1.0 - rn_soft[name])
        labels["SN"] |= sn_soft[name] >= 0.5

    sn_chi = _sn_chi_map(u, arcs, labels["SN"], tissue)
    for name, sign in anat.SIDES.items():
        side = plan.sides[name]
        # The STN yields to the SN and RN.
        stn = anat.soft_inside(anat.subthalamic_distance(u, sign, side))
        stn *= (1.0 - sn_soft[name]) * (1.0 - rn_soft[name])
        painter.paint(
            stn,
            tissue.stn_contrast,
            tissue.stn_r2star,
            tissue.stn_chi,
            TissueClass.SUBTHALAMIC_NUCLEUS,
        )
        labels["STN"] |= stn >= 0.5
        _paint_nigral_complex(scene, arcs[name], sn_soft[name], sn_chi, side)
        painter.paint(
            rn_soft[name],
            tissue.rn_contrast,
            tissue.rn_r2star,
            tissue.rn_chi,
            TissueClass.RED_NUCLEUS,
        )
        labels["RN"] |= rn_soft[name] >= 0.5

    painter.calibrate_sn_chi(labels["SN"], tissue.sn_chi)
    fossa = head.capped(anat.interpeduncular_distance(u), u[:, 2], head.INTERPEDUNCULAR_LEVELS_MM)
    painter.paint_tissue(anat.soft_inside(fossa), tissues.CSF)
    aqueduct = head.capped(anat.aqueduct_distance(u), u[:, 2], head.AQUEDUCT_LEVELS_MM)
    painter.paint_tissue(anat.soft_inside(aqueduct), tissues.CSF)
    labels["N1"] &= labels["SN"]
    return labels


def _paint_vein(canvas: Canvas, plan: SubjectPlan, rng: np.random.Generator) -> FloatArray:
    """The basal vein winding around the peduncle, over the crus; its membership (X, Y, Z)."""
    region = _deformed_region(plan, _canvas_box(canvas, plan, VEIN_BOX_MM))
    u = region.u
    ring = anat.vessel_distance(
        u, rng.uniform(0.5, 0.9), rng.uniform(0, 2 * np.pi), rng.choice([-1.0, 1.0])
    )
    vein = anat.soft_inside(head.capped(ring, u[:, 2], head.MIDBRAIN_LEVELS_MM))
    with canvas.painting(region.box) as painter:
        painter.paint_tissue(vein, tissues.VENOUS_BLOOD)
    return _on_grid(vein, region, plan.site.shape)


def _paint_nigral_complex(
    scene: _NucleiScene,
    arc: anat.ArcCoordinates,
    sn_soft: FloatArray,
    sn_chi: FloatArray,
    side: anat.SideAnatomy,
) -> None:
    """One side's SN (pars reticulata), SNpc and nigrosome-1; adds them to the labels."""
    tissue, painter, labels = scene.tissue, scene.painter, scene.labels
    heterogeneity = 1.0 + 0.04 * scene.texture
    snpc_contrast = _nm_contrast_before_blur(tissue.snpc_contrast)
    nigra = TissueClass.SUBSTANTIA_NIGRA
    painter.paint(
        sn_soft, tissue.snpr_contrast * heterogeneity, tissue.sn_r2star, sn_chi, nigra, nigral=True
    )
    snpc = anat.snpc_membership(
        arc, sn_soft >= 0.5, sn_soft, side, scene.voxel_volume_mm3, scene.texture
    )
    painter.paint(snpc, snpc_contrast * heterogeneity, tissue.sn_r2star, sn_chi, nigra, nigral=True)
    labels["SNpc"] |= snpc >= 0.5
    if not side.nigrosome_present:
        return
    n1 = anat.soft_inside(anat.nigrosome_distance(arc, scene.u[:, 2], side)) * sn_soft
    local_contrast = np.where(snpc >= 0.5, snpc_contrast, tissue.snpr_contrast)
    painter.paint(
        n1,
        local_contrast,
        tissue.nigrosome_r2star,
        sn_chi + tissue.nigrosome_chi_offset,
        nigra,
        nigral=True,
    )
    labels["N1"] |= n1 >= 0.5


def _on_grid(values: NDArray, region: Region, shape: tuple[int, int, int]) -> NDArray:
    """Per-voxel ``values`` of ``region`` (n,) placed on a zero grid of ``shape``."""
    grid = np.zeros(shape, dtype=values.dtype)
    grid[region.box] = values.reshape(region.shape)
    return grid


def _sn_chi_map(
    u: FloatArray, arcs: dict[str, anat.ArcCoordinates], sn: BoolArray, tissue: TissueParameters
) -> FloatArray:
    """Susceptibility inside the SN (ppm) whose mean over the SN is the subject's ``sn_chi``.

    PD iron accumulates posteriorly and asymmetrically, so chi rises towards the posterior
    (lateral) end of the arc and on one side; the pattern is normalised to keep the mean.
    """
    side = np.sign(u[:, 0])
    posterior = -np.where(side > 0, arcs["right"].b, arcs["left"].b)
    relative = (
        tissue.sn_chi_posterior_gradient * posterior + 0.5 * tissue.sn_chi_side_difference * side
    )
    if sn.any():
        relative = relative - relative[sn].mean()
    return tissue.sn_chi * (1.0 + relative)
