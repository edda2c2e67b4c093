"""Digital midbrain phantom: a synthetic multi-echo GRE cohort with HC and PD subjects.

Each subject is drawn from its own random stream ``(seed, index)``, so a subject does not
change when the cohort grows, and two runs with the same seed are byte-identical. The
physics and the numbers follow ``shared/PHANTOM.md``; ``SubjectPlan`` holds every sampled
parameter so that tests can compare the images with what was meant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
from sn_platform.phantom.raters import boundary_jitter, rater_tracing

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

TRUTH_LABELS = ("SN", "SNpc", "N1", "RN", "CC")


@dataclass(frozen=True)
class SiteProtocol:
    """One scanner site's protocol: grid, resolution, echo times and storage orientation.

    Parameters
    ----------
    name : site identifier written to participants.tsv
    voxel_mm : voxel spacing (mm)
    fov_mm : field of view of the midbrain crop (mm); the grid is ``fov / voxel``
    slice_thickness_mm : slice thickness (mm), >= the slice spacing
    first_echo_ms, echo_spacing_ms : TE1 and echo spacing (ms)
    n_echoes : number of echoes written
    orientation : voxel-axis codes the NIfTI files are stored in (nibabel's, e.g. RAS, LAS)
    """

    name: str = "A"
    voxel_mm: tuple[float, float, float] = (0.5, 0.5, 1.0)
    fov_mm: tuple[float, float, float] = (64.0, 64.0, 32.0)
    slice_thickness_mm: float = 1.0
    first_echo_ms: float = 7.5
    echo_spacing_ms: float = 7.5
    n_echoes: int = 5
    orientation: str = "RAS"

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid shape (voxels), ``fov_mm / voxel_mm`` rounded."""
        x, y, z = (round(f / v) for f, v in zip(self.fov_mm, self.voxel_mm, strict=True))
        return (x, y, z)

    @property
    def echo_times_ms(self) -> FloatArray:
        """Echo times (ms), shape (n_echoes,)."""
        return self.first_echo_ms + self.echo_spacing_ms * np.arange(
            self.n_echoes, dtype=np.float64
        )


@dataclass(frozen=True)
class PhantomConfig:
    """Cohort-level settings of the phantom; defaults follow PHANTOM.md."""

    subjects: int = 30
    seed: int = 0
    sites: tuple[SiteProtocol, ...] = (SiteProtocol(),)
    pd_fraction: float = 0.5
    manual_margin_mm: float = 0.5
    rater_jitter_sd_mm: tuple[float, float] = (0.6, 0.9)
    rater_shared_fraction: float = 0.4
    snr_range: tuple[float, float] = (30.0, 100.0)
    bias_amplitude_range: tuple[float, float] = (0.1, 0.3)
    qsm_noise_sd_ppm: float = 0.01
    vessel_probability: float = 0.3
    pulsation_probability: float = 0.15

    def __post_init__(self) -> None:
        if self.subjects < 1:
            raise ValueError(f"subjects must be >= 1, got {self.subjects}")
        if not self.sites:
            raise ValueError("at least one site protocol is needed")
        if not 0.0 <= self.pd_fraction <= 1.0:
            raise ValueError(f"pd_fraction must be in [0, 1], got {self.pd_fraction}")


@dataclass(frozen=True)
class TissueParameters:
    """Per-subject tissue properties: echo-1 contrast vs crus, R2* (1/s), chi (ppm)."""

    snpc_contrast: float
    snpr_contrast: float
    sn_r2star: float
    sn_chi: float
    nigrosome_r2star: float
    nigrosome_chi_offset: float
    rn_contrast: float
    rn_r2star: float
    rn_chi: float
    crus_r2star: float
    crus_chi: float
    sn_chi_posterior_gradient: float
    sn_chi_side_difference: float


@dataclass(frozen=True)
class SubjectPlan:
    """Everything sampled for one subject before any image is computed."""

    participant_id: str
    group: str
    age: int
    sex: str
    site: SiteProtocol
    rotation_deg: tuple[float, float, float]
    shift_mm: tuple[float, float, float]
    sides: dict[str, anat.SideAnatomy]
    tissue: TissueParameters
    snr: float
    intensity_scale: float
    bias_amplitude: float
    has_vessel: bool
    has_pulsation: bool
    rater_jitter_sd_mm: tuple[float, float]
    deformation_seed: int = field(repr=False)


@dataclass
class SimulatedSubject:
    """Images and labels of one subject on its stored grid.

    ``echoes`` (E, X, Y, Z) int16 magnitudes; ``chi_ppm`` (X, Y, Z) float32; labels are
    uint8 (X, Y, Z); ``affine`` (4, 4) voxel-to-world (mm) of every file.
    """

    plan: SubjectPlan
    affine: FloatArray
    echoes: NDArray[np.int16]
    chi_ppm: NDArray[np.float32]
    truth: dict[str, NDArray[np.uint8]]
    manual: NDArray[np.uint8]
    manual2: NDArray[np.uint8]
    manual_rn: NDArray[np.uint8]


# The SNpc is 1-3 voxels thick: partial volume and the point-spread function lower its
# measured echo-1 contrast to about 83 % of the tissue's excess over the crus (measured on
# the default cohort), so the tissue excess is raised to make the measured ratio match.
NM_PARTIAL_VOLUME_GAIN = 1.2


def _nm_contrast_before_blur(measured_contrast: float) -> float:
    return 1.0 + NM_PARTIAL_VOLUME_GAIN * (measured_contrast - 1.0)


def group_of(index: int, pd_fraction: float) -> str:
    """Deterministic balanced group assignment: PD whenever the PD quota steps up."""
    return "PD" if int((index + 1) * pd_fraction) > int(index * pd_fraction) else "HC"


def sample_subject_plan(config: PhantomConfig, index: int) -> SubjectPlan:
    """Sample one subject's anatomy, pose, tissue and acquisition (deterministic per index)."""
    rng = np.random.default_rng([config.seed, index])
    group = group_of(index, config.pd_fraction)
    pd = group == "PD"
    site = config.sites[int(rng.integers(len(config.sites)))]

    scale = rng.normal(1.0, 0.05)
    asymmetry = rng.uniform(0.0, 0.15) * rng.choice([-1.0, 1.0])
    snpc_mean = rng.normal(79.0 if pd else 96.0, 17.0)
    nigrosome_sides = _nigrosome_sides(rng, pd)
    sides = {}
    for side_name, sign in anat.SIDES.items():
        side_scale = scale * (1.0 + 0.5 * sign * asymmetry)
        height = rng.uniform(12.0, 16.0) * np.sqrt(side_scale)
        sides[side_name] = anat.SideAnatomy(
            sn_radius=rng.normal(11.5, 0.4),
            sn_thickness=rng.uniform(2.8, 3.8) * side_scale,
            sn_angle_lateral=np.deg2rad(rng.uniform(14.0, 20.0)),
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
            red_nucleus_centre=(
                sign * rng.normal(4.8, 0.3),
                rng.normal(-2.0, 0.4),
                rng.uniform(3.6, 4.6),
            ),
        )

    tissue = TissueParameters(
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
        sn_chi_posterior_gradient=rng.uniform(0.15, 0.3) if pd else rng.uniform(0.0, 0.1),
        sn_chi_side_difference=(rng.uniform(0.05, 0.2) if pd else rng.uniform(0.0, 0.05))
        * rng.choice([-1.0, 1.0]),
    )
    jitter_low, jitter_high = config.rater_jitter_sd_mm
    rater_jitter = tuple(
        rng.uniform(jitter_low, jitter_high) + (0.1 if pd else 0.0) for _ in range(2)
    )
    return SubjectPlan(
        participant_id=f"{index + 1:03d}",
        group=group,
        age=int(np.clip(rng.normal(66.0 if pd else 64.0, 8.0), 40, 90)),
        sex=str(rng.choice(["F", "M"])),
        site=site,
        rotation_deg=tuple(rng.uniform(-12.0, 12.0, 3) * np.array([0.6, 0.6, 1.0])),
        shift_mm=tuple(rng.uniform(-5.0, 5.0, 3) * np.array([1.0, 1.0, 0.4])),
        sides=sides,
        tissue=tissue,
        snr=rng.uniform(*config.snr_range),
        intensity_scale=rng.uniform(600.0, 1400.0),
        bias_amplitude=rng.uniform(*config.bias_amplitude_range),
        has_vessel=bool(rng.random() < config.vessel_probability),
        has_pulsation=bool(rng.random() < config.pulsation_probability),
        rater_jitter_sd_mm=(float(rater_jitter[0]), float(rater_jitter[1])),
        deformation_seed=int(rng.integers(2**31)),
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


def _rotation_matrix(angles_deg: tuple[float, float, float]) -> FloatArray:
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def anatomical_coordinates(plan: SubjectPlan) -> FloatArray:
    """Anatomical coordinates (N, 3) mm of every voxel centre, after pose and deformation.

    World = R @ anatomy + shift; a smooth random deformation field (about 1 mm) makes
    every subject's shape unique beyond scaling.
    """
    shape = plan.site.shape
    affine = ras_affine(plan.site)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    world = index * affine.diagonal()[:3] + affine[:3, 3]
    rotation = _rotation_matrix(plan.rotation_deg)
    u = (world - np.asarray(plan.shift_mm)) @ rotation
    rng = np.random.default_rng(plan.deformation_seed)
    displacement = np.zeros_like(u)
    for _ in range(4):
        wave_vector = rng.normal(0.0, 1.0, 3) * 2.0 * np.pi / rng.uniform(12.0, 30.0)
        amplitude = rng.normal(0.0, 0.5, 3)
        displacement += amplitude * np.sin(u @ wave_vector + rng.uniform(0, 2 * np.pi))[:, None]
    return u + displacement


class _SignalCompositor:
    """Paints tissues front to back with partial-volume weights into echo signals and chi."""

    def __init__(
        self, n_points: int, echo_times_ms: FloatArray, first_echo_ms: float, crus_r2star: float
    ):
        self.echo_times_s = echo_times_ms[:, None] * 1e-3
        self.first_echo_s = first_echo_ms * 1e-3
        self.crus_r2star = crus_r2star
        self.signals = np.zeros((echo_times_ms.size, n_points))
        self.chi = np.zeros(n_points)
        self.sn_weight = np.zeros(n_points)

    def paint(
        self,
        membership: FloatArray,
        echo1_contrast: FloatArray | float,
        r2star: FloatArray | float,
        chi: FloatArray | float,
        nigral: bool = False,
    ) -> None:
        """Overlay a tissue whose echo-1 signal is ``echo1_contrast`` times the crus's.

        ``nigral`` marks SN tissue, whose partial-volume weight is tracked for calibration.
        """
        m0_eff = echo1_contrast * np.exp(
            self.first_echo_s * (np.asarray(r2star) - self.crus_r2star)
        )
        tissue_signal = m0_eff * np.exp(-self.echo_times_s * r2star)
        self.signals += membership * (tissue_signal - self.signals)
        self.chi += membership * (chi - self.chi)
        self.sn_weight += membership * (float(nigral) - self.sn_weight)

    def calibrate_sn_chi(self, sn: BoolArray, target_ppm: float) -> None:
        """Shift the nigral chi so that the mean over the SN label is ``target_ppm``.

        Partial volume with the crus and tegmentum would otherwise pull the measured mean
        below the tissue value; the figures in PHANTOM.md are measured means.
        """
        weight = self.sn_weight[sn].mean()
        if weight > 0:
            self.chi += self.sn_weight * (target_ppm - self.chi[sn].mean()) / weight


def simulate_subject(plan: SubjectPlan, config: PhantomConfig) -> SimulatedSubject:
    """Compute the images and labels of one subject."""
    site = plan.site
    shape = site.shape
    tissue = plan.tissue
    voxel_volume = float(np.prod(site.voxel_mm))
    u = anatomical_coordinates(plan)
    rng = np.random.default_rng([config.seed, int(plan.participant_id), 7])
    texture = smooth_noise(shape, (2.0, 2.0, 1.0), 1.0, rng).ravel()

    paint = _SignalCompositor(
        u.shape[0], site.echo_times_ms, site.first_echo_ms, tissue.crus_r2star
    )
    paint.paint(np.ones(u.shape[0]), 1.08, 16.0, 0.02)
    paint.paint(anat.soft_inside(anat.ambient_cistern_distance(u)), 0.55, 3.0, 0.0)
    paint.paint(anat.soft_inside(anat.midbrain_distance(u)), 1.05, 18.0, 0.01)

    arcs = {
        name: anat.arc_coordinates(u, sign, plan.sides[name]) for name, sign in anat.SIDES.items()
    }
    labels = {name: np.zeros(u.shape[0], dtype=bool) for name in TRUTH_LABELS}
    sn_soft = {}
    for name, arc in arcs.items():
        side = plan.sides[name]
        paint.paint(
            anat.soft_inside(anat.peduncle_distance(arc, side)),
            1.0,
            tissue.crus_r2star,
            tissue.crus_chi,
        )
        labels["CC"] |= anat.crus_distance(arc, u[:, 2], side) < 0
        sn_soft[name] = anat.soft_inside(anat.substantia_nigra_distance(arc, side))
        labels["SN"] |= sn_soft[name] >= 0.5

    sn_chi = _sn_chi_map(u, arcs, labels["SN"], tissue)
    for name, arc in arcs.items():
        side = plan.sides[name]
        sn_inside = sn_soft[name] >= 0.5
        heterogeneity = 1.0 + 0.04 * texture
        paint.paint(
            sn_soft[name],
            tissue.snpr_contrast * heterogeneity,
            tissue.sn_r2star,
            sn_chi,
            nigral=True,
        )
        snpc = anat.snpc_membership(arc, sn_inside, sn_soft[name], side, voxel_volume, texture)
        paint.paint(
            snpc,
            _nm_contrast_before_blur(tissue.snpc_contrast) * heterogeneity,
            tissue.sn_r2star,
            sn_chi,
            nigral=True,
        )
        labels["SNpc"] |= snpc >= 0.5
        if side.nigrosome_present:
            n1 = anat.soft_inside(anat.nigrosome_distance(arc, u[:, 2], side)) * sn_soft[name]
            local_contrast = np.where(
                snpc >= 0.5, _nm_contrast_before_blur(tissue.snpc_contrast), tissue.snpr_contrast
            )
            paint.paint(
                n1,
                local_contrast,
                tissue.nigrosome_r2star,
                sn_chi + tissue.nigrosome_chi_offset,
                nigral=True,
            )
            labels["N1"] |= n1 >= 0.5
        rn_distance = anat.ellipsoid_distance(u, side.red_nucleus_centre, side.red_nucleus_radii)
        paint.paint(
            anat.soft_inside(rn_distance), tissue.rn_contrast, tissue.rn_r2star, tissue.rn_chi
        )
        labels["RN"] |= rn_distance < 0

    paint.calibrate_sn_chi(labels["SN"], tissue.sn_chi)
    paint.paint(anat.soft_inside(anat.interpeduncular_distance(u)), 0.55, 3.0, 0.0)
    paint.paint(anat.soft_inside(anat.aqueduct_distance(u)), 0.55, 3.0, 0.0)
    vessel = np.zeros(u.shape[0])
    if plan.has_vessel:
        vessel = anat.soft_inside(
            anat.vessel_distance(
                u, rng.uniform(0.5, 0.9), rng.uniform(0, 2 * np.pi), rng.choice([-1.0, 1.0])
            )
        )
        paint.paint(vessel, 0.9, 45.0, 0.25)

    signals = paint.signals.reshape(-1, *shape) * plan.intensity_scale
    if plan.has_pulsation:
        # Flow pulsation ghosts the vessel along the phase-encoding (y) axis.
        ghost = np.roll(signals * vessel.reshape(shape), shape[1] // 2, axis=2)
        signals = signals + rng.uniform(0.1, 0.25) * ghost
    signals *= polynomial_bias_field(shape, 3, plan.bias_amplitude, rng)[None]
    signals = slice_profile_blur(signals, site.voxel_mm, site.slice_thickness_mm)
    magnitudes = rician_magnitude(signals, plan.intensity_scale / plan.snr, rng)
    echoes = np.clip(np.rint(magnitudes), 0, np.iinfo(np.int16).max).astype(np.int16)

    chi = paint.chi.reshape(shape)
    chi = chi + smooth_noise(
        shape, (1.2, 1.2, 0.8), config.qsm_noise_sd_ppm * rng.uniform(0.8, 1.2), rng
    )
    chi = chi + qsm_streaks(shape, site.voxel_mm, 0.4 * config.qsm_noise_sd_ppm, rng)

    truth = {name: mask.reshape(shape) for name, mask in labels.items()}
    truth["N1"] &= truth["SN"]
    manual, manual2 = _rater_tracings(truth["SN"], plan, config)
    rn_jitter = 0.3 * boundary_jitter(
        shape, site.voxel_mm, np.random.default_rng([config.seed, int(plan.participant_id), 99])
    )
    manual_rn = rater_tracing(truth["RN"], site.voxel_mm, 0.0, rn_jitter)

    affine = ras_affine(site)
    stored_affine, reorient = reorient_from_ras(affine, shape, site.orientation)
    return SimulatedSubject(
        plan=plan,
        affine=stored_affine,
        echoes=np.stack([reorient(e) for e in echoes]),
        chi_ppm=reorient(chi).astype(np.float32),
        truth={name: reorient(mask).astype(np.uint8) for name, mask in truth.items()},
        manual=reorient(manual).astype(np.uint8),
        manual2=reorient(manual2).astype(np.uint8),
        manual_rn=reorient(manual_rn).astype(np.uint8),
    )


def _rater_tracings(
    sn: BoolArray, plan: SubjectPlan, config: PhantomConfig
) -> tuple[BoolArray, BoolArray]:
    """Two raters' SN tracings whose boundary errors share ``rater_shared_fraction``.

    Part of a rater's error follows what the image shows (a blurred edge misleads both
    raters alike); the rest is the rater's own. Each rater's jitter SD stays as sampled.
    """
    shape, voxel_mm = plan.site.shape, plan.site.voxel_mm
    streams = [
        np.random.default_rng([config.seed, int(plan.participant_id), 100 + k]) for k in range(3)
    ]
    shared = boundary_jitter(shape, voxel_mm, streams[0])
    weight = config.rater_shared_fraction
    tracings = []
    for sd_mm, stream in zip(plan.rater_jitter_sd_mm, streams[1:], strict=True):
        own = boundary_jitter(shape, voxel_mm, stream)
        jitter = sd_mm * (np.sqrt(weight) * shared + np.sqrt(1.0 - weight) * own)
        tracings.append(rater_tracing(sn, voxel_mm, config.manual_margin_mm, jitter))
    return tracings[0], tracings[1]


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
