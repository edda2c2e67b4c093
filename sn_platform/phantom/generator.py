"""Digital midbrain phantom: a synthetic multi-echo GRE cohort with HC and PD subjects.

Each subject is drawn from its own random stream ``(seed, index)``, so a subject does not
change when the cohort grows, and two runs with the same seed are byte-identical. The
physics and the numbers follow ``shared/PHANTOM.md``; ``SubjectPlan`` holds every sampled
parameter so that tests can compare the images with what was meant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sn_platform.data.orientation import reorient_from_ras
from sn_platform.phantom import anatomy as anat
from sn_platform.phantom.acquisition import (
    polynomial_bias_field,
    qsm_streaks,
    rician_magnitude,
    slice_profile_blur,
    smooth_noise,
)
from sn_platform.phantom.arrays import BoolArray, FloatArray
from sn_platform.phantom.plan import SubjectPlan, TissueParameters
from sn_platform.phantom.raters import rater_pair
from sn_platform.phantom.regions import Pose
from sn_platform.phantom.render import RenderedAnatomy, render_anatomy
from sn_platform.phantom.settings import PhantomConfig, SiteProtocol
from sn_platform.phantom.surroundings import Ellipsoid, HeadAnatomy
from sn_platform.phantom.template import TemplateHead

# Raters (derivatives folders) and what each of them draws.
RATER_SOURCES = ("manual", "manual2")
RATER_LABELS = ("SN", "RN", "CC")
# Precision of the stored QSM (ppm): 2^-14, about 1/160 of the reconstruction noise.
QSM_STEP_PPM = 2.0**-14


@dataclass
class SimulatedSubject:
    """Images and labels of one subject on its stored grid.

    ``echoes`` (E, X, Y, Z) int16 magnitudes; ``chi_ppm`` (X, Y, Z) float32; labels are
    uint8 (X, Y, Z): ``truth`` by label name, ``tracings`` by rater (derivatives folder,
    RATER_SOURCES) then label (RATER_LABELS), ``tissue_classes`` the tissue label map
    (``TissueClass``); ``affine`` (4, 4) voxel-to-world (mm).
    """

    plan: SubjectPlan
    affine: FloatArray
    echoes: NDArray[np.int16]
    chi_ppm: NDArray[np.float32]
    truth: dict[str, NDArray[np.uint8]]
    tracings: dict[str, dict[str, NDArray[np.uint8]]]
    tissue_classes: NDArray[np.uint8]


def group_of(index: int, pd_fraction: float) -> str:
    """Deterministic balanced group assignment: PD whenever the PD quota steps up."""
    return "PD" if int((index + 1) * pd_fraction) > int(index * pd_fraction) else "HC"


def sample_subject_plan(config: PhantomConfig, index: int) -> SubjectPlan:
    """Sample one subject's anatomy, pose, tissue and acquisition (deterministic per index)."""
    rng = np.random.default_rng([config.seed, index])
    group = group_of(index, config.pd_fraction)
    pd = group == "PD"
    site = config.sites[int(rng.integers(len(config.sites)))]
    if config.protocol_variation is not None:  # its own stream: the plans' draws unchanged
        site = config.protocol_variation.draw(site, np.random.default_rng([config.seed, index, 11]))
    sides = _sample_sides(rng, pd)
    tissue = _sample_tissue(rng, pd)
    jitter_low, jitter_high = config.rater_jitter_sd_mm
    rater_jitter = tuple(
        rng.uniform(jitter_low, jitter_high) + (0.1 if pd else 0.0) for _ in range(2)
    )
    age = int(np.clip(rng.normal(66.0 if pd else 64.0, 8.0), 40, 90))
    sex = str(rng.choice(["F", "M"]))
    rotation_deg = rng.uniform(-12.0, 12.0, 3) * np.array([0.6, 0.6, 1.0])
    shift_mm = rng.uniform(-1.0, 1.0, 3) * np.asarray(config.offset_bound_mm(site))
    return SubjectPlan(
        participant_id=f"{index + 1:03d}",
        group=group,
        age=age,
        sex=sex,
        site=site,
        sides=sides,
        tissue=tissue,
        snr=rng.uniform(*config.snr_range),
        intensity_scale=rng.uniform(600.0, 1400.0),
        bias_amplitude=rng.uniform(*config.bias_amplitude_range),
        has_vessel=bool(rng.random() < config.vessel_probability),
        has_pulsation=bool(rng.random() < config.pulsation_probability),
        rater_jitter_sd_mm=(float(rater_jitter[0]), float(rater_jitter[1])),
        pose=Pose(
            rotation_deg=(float(rotation_deg[0]), float(rotation_deg[1]), float(rotation_deg[2])),
            shift_mm=(float(shift_mm[0]), float(shift_mm[1]), float(shift_mm[2])),
            deformation_seed=int(rng.integers(2**31)),
        ),
        head=_sample_template_head(rng)
        if config.head_model == "mni"
        else _sample_head(rng, config.head_scale),
    )


def _sample_sides(rng: np.random.Generator, pd: bool) -> dict[str, anat.SideAnatomy]:
    """Both sides' nigral complex, RN and STN: overall scale, 0-15 % asymmetry (mm)."""
    scale = rng.normal(1.0, 0.05)
    asymmetry = rng.uniform(0.0, 0.15) * rng.choice([-1.0, 1.0])
    snpc_mean = rng.normal(79.0 if pd else 96.0, 17.0)
    nigrosome_sides = _nigrosome_sides(rng, pd)
    sides = {}
    for side_name, sign in anat.SIDES.items():
        side_scale = scale * (1.0 + 0.5 * sign * asymmetry)
        height = rng.uniform(12.0, 16.0) * np.sqrt(side_scale)
        sn_radius = rng.normal(11.5, 0.4)
        sn_angle_lateral = np.deg2rad(rng.uniform(14.0, 20.0))
        red_nucleus_centre = (
            sign * rng.normal(4.8, 0.3),
            rng.normal(1.0, 0.4),
            rng.uniform(3.6, 4.6),
        )
        sides[side_name] = anat.SideAnatomy(
            sn_radius=sn_radius,
            sn_thickness=rng.uniform(2.8, 3.8) * side_scale,
            sn_angle_lateral=sn_angle_lateral,
            sn_angle_medial=np.deg2rad(rng.uniform(70.0, 78.0)),
            sn_height=height,
            sn_centre_z=0.0,
            snpc_volume_mm3=float(
                np.clip(snpc_mean * (1.0 + 0.5 * sign * asymmetry) + rng.normal(0, 8), 35, 170)
            ),
            pd_lateral_caudal_loss=rng.uniform(0.12, 0.26) if pd else 0.0,
            nigrosome_present=side_name in nigrosome_sides,
            nigrosome_size=(rng.uniform(1.0, 2.0), rng.uniform(3.0, 5.0), rng.uniform(3.0, 6.0)),
            red_nucleus_radii=(rng.uniform(2.5, 3.5), rng.uniform(2.5, 3.5), rng.uniform(2.8, 3.5)),
            red_nucleus_centre=red_nucleus_centre,
            # Just beyond the SN's lateral end, slightly dorsal, 2-3 mm above the RN centre:
            # dorsolateral to the SN and cranial to the slab below the RN.
            stn_angle=sn_angle_lateral - np.deg2rad(rng.uniform(4.0, 8.0)),
            stn_radius=sn_radius - rng.uniform(0.5, 1.5),
            stn_centre_z=red_nucleus_centre[2] + rng.uniform(2.0, 3.0),
            stn_radii=(
                rng.uniform(4.5, 5.5) * side_scale,
                rng.uniform(1.8, 2.2) * side_scale,
                rng.uniform(2.7, 3.3) * side_scale,
            ),
        )
    return sides


def _sample_tissue(rng: np.random.Generator, pd: bool) -> TissueParameters:
    """Per-subject tissue properties by group (PHANTOM.md, contrast table)."""
    return TissueParameters(
        snpc_contrast=rng.normal(1.15 if pd else 1.24, 0.09),
        snpr_contrast=rng.uniform(1.0, 1.05),
        sn_r2star=rng.normal(31.0, 4.0) if pd else rng.normal(27.0, 3.0),
        sn_chi=rng.normal(0.126, 0.016) if pd else rng.normal(0.098, 0.012),
        nigrosome_r2star=rng.normal(20.0, 1.5),
        nigrosome_chi_offset=-rng.normal(0.037, 0.006),
        rn_contrast=rng.normal(1.0, 0.03),
        rn_r2star=rng.uniform(22.0, 28.0),
        rn_chi=rng.normal(0.105 if pd else 0.10, 0.01),
        crus_r2star=rng.normal(20.0, 1.0),
        crus_chi=rng.normal(-0.03, 0.004),
        stn_contrast=rng.uniform(0.97, 1.03),
        stn_r2star=rng.uniform(30.0, 35.0),
        stn_chi=rng.uniform(0.08, 0.12),
        sn_chi_posterior_gradient=rng.uniform(0.15, 0.3) if pd else rng.uniform(0.0, 0.1),
        sn_chi_side_difference=(rng.uniform(0.05, 0.2) if pd else rng.uniform(0.0, 0.05))
        * rng.choice([-1.0, 1.0]),
    )


def _sample_head(rng: np.random.Generator, head_scale: float) -> HeadAnatomy:
    """Head outline at the midbrain level: brain 124 x 150 mm (+/-6 %) times ``head_scale``,
    then 8-11 mm of CSF, skull and scalp to the air."""
    scale = head_scale * float(np.clip(rng.normal(1.0, 0.03), 0.94, 1.06))
    phases = rng.uniform(0.0, 2.0 * np.pi, 3)
    return HeadAnatomy(
        brain=Ellipsoid(
            centre_mm=(0.0, rng.uniform(-4.0, 0.0), 10.0),
            radii_mm=(62.0 * scale, 75.0 * scale, 80.0 * scale),
        ),
        csf_gap_mm=rng.uniform(1.0, 2.0),
        scalp_skull_mm=rng.uniform(7.0, 9.0),
        gyral_phases=(float(phases[0]), float(phases[1]), float(phases[2])),
    )


def _sample_template_head(rng: np.random.Generator) -> TemplateHead:
    """A head on the MNI template: a brain 0-12 % smaller than the template's, by axis up
    to 3 % more, a large-scale deformation of about 2 mm, then CSF, skull and scalp."""
    size = rng.uniform(1.0, 1.12)
    scale = size * (1.0 + rng.uniform(-0.03, 0.03, 3))
    return TemplateHead(
        scale=(float(scale[0]), float(scale[1]), float(scale[2])),
        deformation_seed=int(rng.integers(2**31)),
        deformation_mm=2.0,
        csf_gap_mm=rng.uniform(1.0, 2.0),
        scalp_skull_mm=rng.uniform(7.0, 9.0),
    )


def _nigrosome_sides(rng: np.random.Generator, pd: bool) -> set[str]:
    """Sides with a visible nigrosome-1 (PD: 40 % none, 35 % one side; HC: 18 % none)."""
    draw = rng.random()
    one_side = {str(rng.choice(list(anat.SIDES)))}
    if pd:
        return set() if draw < 0.40 else one_side if draw < 0.75 else set(anat.SIDES)
    return set() if draw < 0.18 else set(anat.SIDES)


def ras_affine(site: SiteProtocol) -> FloatArray:
    """Voxel-to-world affine (mm) of the site grid in RAS order, centred on the origin."""
    affine = np.diag([*site.voxel_mm, 1.0])
    affine[:3, 3] = -0.5 * (np.asarray(site.shape) - 1) * np.asarray(site.voxel_mm)
    return affine


def simulate_subject(plan: SubjectPlan, config: PhantomConfig) -> SimulatedSubject:
    """Compute the images and labels of one subject, stored in its site's orientation."""
    site = plan.site
    rng = np.random.default_rng([config.seed, int(plan.participant_id), 7])
    anatomy = render_anatomy(plan, rng)
    echoes = _acquire_echoes(anatomy, plan, rng)
    chi = _reconstruct_qsm(
        anatomy.canvas.chi_on_grid(site.shape), site, config.qsm_noise_sd_ppm, rng
    )
    tracings = _rater_tracings(anatomy.labels, plan, config)
    stored_affine, reorient = reorient_from_ras(ras_affine(site), site.shape, site.orientation)

    def stored_masks(masks: dict[str, BoolArray]) -> dict[str, NDArray[np.uint8]]:
        return {name: reorient(mask).astype(np.uint8) for name, mask in masks.items()}

    return SimulatedSubject(
        plan=plan,
        affine=stored_affine,
        echoes=np.stack([reorient(echo) for echo in echoes]),
        chi_ppm=reorient(chi),
        truth=stored_masks(anatomy.labels),
        tracings={source: stored_masks(masks) for source, masks in tracings.items()},
        tissue_classes=reorient(anatomy.canvas.classes_on_grid(site.shape)),
    )


def _acquire_echoes(
    anatomy: RenderedAnatomy, plan: SubjectPlan, rng: np.random.Generator
) -> NDArray[np.int16]:
    """Magnitudes (E, X, Y, Z) int16: bias field, slice profile, pulsation ghost, Rician noise.

    The receive bias and the point-spread function act on the head (the canvas); the
    noise on the whole grid, so air holds Rician noise only. Echo by echo, into reused
    buffers, so that a whole-head grid needs one echo's worth of memory.
    """
    site, canvas = plan.site, anatomy.canvas
    ghost_gain = rng.uniform(0.1, 0.25) if plan.has_pulsation else 0.0
    gain = plan.intensity_scale * polynomial_bias_field(canvas.shape, 3, plan.bias_amplitude, rng)
    noise_sd = plan.intensity_scale / plan.snr
    echoes = np.empty((site.n_echoes, *site.shape), dtype=np.int16)
    weighted, blurred = np.empty(canvas.shape, np.float32), np.empty(canvas.shape, np.float32)
    signal = np.zeros(site.shape, dtype=np.float32)
    for number, relative in enumerate(canvas.signals):
        np.multiply(relative.reshape(canvas.shape), gain, out=weighted)
        slice_profile_blur(weighted, site.voxel_mm, site.slice_thickness_mm, out=blurred)
        signal[canvas.box] = blurred
        magnitude = rician_magnitude(_with_ghost(signal, anatomy.vein, ghost_gain), noise_sd, rng)
        echoes[number] = np.clip(np.rint(magnitude, out=magnitude), 0, np.iinfo(np.int16).max)
    return echoes


def _with_ghost(
    signal: NDArray[np.float32], vein: FloatArray | None, gain: float
) -> NDArray[np.float32]:
    """``signal`` plus the vein's flow-pulsation ghost, shifted half the FOV along y (phase)."""
    if vein is None or gain == 0.0:
        return signal
    ghost = np.roll(signal * vein, signal.shape[1] // 2, axis=1)
    return np.asarray(signal + gain * ghost, dtype=np.float32)


def _reconstruct_qsm(
    chi_ppm: NDArray[np.float32], site: SiteProtocol, noise_sd_ppm: float, rng: np.random.Generator
) -> NDArray[np.float32]:
    """QSM (ppm): the true chi plus smooth reconstruction noise and mild streaks, air too.

    ``chi_ppm`` (X, Y, Z) becomes the QSM, in place, in steps of QSM_STEP_PPM: far below
    the noise, and a noisy whole-head map then compresses to half the size, twice as fast.
    """
    qsm = chi_ppm
    qsm += smooth_noise(site.shape, (1.2, 1.2, 0.8), noise_sd_ppm * rng.uniform(0.8, 1.2), rng)
    qsm += qsm_streaks(site.shape, site.voxel_mm, 0.4 * noise_sd_ppm, rng)
    qsm /= QSM_STEP_PPM
    np.round(qsm, out=qsm)
    qsm *= QSM_STEP_PPM
    return qsm


def _rater_tracings(
    truth: dict[str, BoolArray], plan: SubjectPlan, config: PhantomConfig
) -> dict[str, dict[str, BoolArray]]:
    """Each rater's tracing of each of RATER_LABELS, by rater (RATER_SOURCES) then label.

    Both raters trace every structure with the same error model (margin, jitter, shared
    fraction); each structure has its own random streams.
    """
    tracings: dict[str, dict[str, BoolArray]] = {source: {} for source in RATER_SOURCES}
    for number, label in enumerate(RATER_LABELS):
        streams = [
            np.random.default_rng([config.seed, int(plan.participant_id), 100 + 10 * number + k])
            for k in range(3)
        ]
        pair = rater_pair(
            truth[label],
            plan.site.voxel_mm,
            config.manual_margin_mm,
            plan.rater_jitter_sd_mm,
            config.rater_shared_fraction,
            streams,
        )
        for source, tracing in zip(RATER_SOURCES, pair, strict=True):
            tracings[source][label] = tracing
    return tracings
