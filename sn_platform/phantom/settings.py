"""The phantom's settings: each site's protocol and the cohort's (``sn-phantom``'s
``site_catalog`` and ``generator``, built by Hydra)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from sn_platform.phantom.arrays import FloatArray

# Half-size (mm) of the box around the SN centre that must stay inside the field of view:
# the SN, RN, STN, crus, cisterns and vessels, rotated and deformed.
MIDBRAIN_HALF_EXTENT_MM = (25.0, 25.0, 15.0)
# A partial-brain slab (NM-MRI) need only hold the SN and the RN's lowest part above it.
SLAB_HALF_EXTENT_MM = (25.0, 25.0, 10.0)
SITE_IMAGES = ("megre", "nm")
HEAD_MODELS = ("mni", "geometric")


@dataclass(frozen=True)
class SiteProtocol:
    """One scanner site's protocol: grid, resolution, echo times and storage orientation.

    Parameters
    ----------
    name : site identifier written to participants.tsv
    voxel_mm : voxel spacing (mm)
    fov_mm : field of view (mm), an axial slab through the whole head centred on the
        world origin; the grid is ``fov / voxel``
    slice_thickness_mm : slice thickness (mm), >= the slice spacing
    first_echo_ms, echo_spacing_ms : TE1 and echo spacing (ms)
    n_echoes : number of echoes written
    orientation : voxel-axis codes the NIfTI files are stored in (nibabel's, e.g. RAS, LAS)
    images : what the site writes: ``megre``, the echo magnitudes of a multi-echo GRE
        (``_echo-<n>_part-mag_MEGRE``) and its QSM (``_Chimap``); ``nm``, a single-echo
        NM-MRI image (``_acq-NM_T1w``, echo 1 of the MT-prepared signal) and no QSM
    partial_brain : a slab through the midbrain only (NM-MRI): its field of view must hold
        the SN and RN (``SLAB_HALF_EXTENT_MM``), not the whole midbrain box
    midbrain_offset_mm : this site's bound on the SN centre's offset from the FOV centre
        (mm, per world axis; a radiographer centres a thin slab on the midbrain), or None
        for the cohort's
    """

    name: str = "A"
    voxel_mm: tuple[float, float, float] = (0.5, 0.5, 1.0)
    fov_mm: tuple[float, float, float] = (220.0, 220.0, 40.0)
    slice_thickness_mm: float = 1.0
    first_echo_ms: float = 7.5
    echo_spacing_ms: float = 7.5
    n_echoes: int = 5
    orientation: str = "RAS"
    images: str = "megre"
    partial_brain: bool = False
    midbrain_offset_mm: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.images not in SITE_IMAGES:
            raise ValueError(f"site {self.name}: images must be one of {SITE_IMAGES}")
        if self.images == "nm" and self.n_echoes != 1:
            raise ValueError(f"site {self.name}: an NM-MRI site writes one echo (n_echoes: 1)")
        if self.midbrain_offset_mm is not None:
            offset = tuple(float(v) for v in self.midbrain_offset_mm)
            object.__setattr__(self, "midbrain_offset_mm", offset)

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
class ProtocolVariation:
    """Ranges each subject's protocol is drawn from, around its site's, so that training
    meets protocols no preset names: in-plane voxel, slice spacing and thickness, through-
    plane field of view, echo times and storage orientation (``sn-phantom variation=wide``).
    A partial-brain (NM slab) site keeps its own protocol.

    Parameters
    ----------
    voxel_in_plane_mm : range of the in-plane voxel size (mm, square)
    slice_mm : range of the slice spacing (mm)
    thickness_ratio : range of slice thickness over spacing (>= 1: gaps never, overlap often)
    fov_z_mm : range of the through-plane field of view (mm)
    first_echo_ms, echo_spacing_ms : ranges of TE1 and the echo spacing (ms)
    orientations : storage orientations drawn from
    """

    voxel_in_plane_mm: tuple[float, float] = (0.5, 0.8)
    slice_mm: tuple[float, float] = (0.8, 1.6)
    thickness_ratio: tuple[float, float] = (1.0, 1.6)
    fov_z_mm: tuple[float, float] = (40.0, 48.0)
    first_echo_ms: tuple[float, float] = (4.0, 9.0)
    echo_spacing_ms: tuple[float, float] = (5.0, 9.0)
    orientations: tuple[str, ...] = ("RAS", "LAS", "LPS", "PIR")

    def draw(self, site: SiteProtocol, rng: np.random.Generator) -> SiteProtocol:
        """A protocol drawn around ``site`` (its name, echo count and images kept)."""
        if site.partial_brain:
            return site

        def draw(bounds: tuple[float, float], decimals: int = 2) -> float:
            return round(float(rng.uniform(*bounds)), decimals)

        in_plane, spacing = draw(self.voxel_in_plane_mm), draw(self.slice_mm)
        slices = max(1, round(draw(self.fov_z_mm) / spacing))
        return replace(
            site,
            voxel_mm=(in_plane, in_plane, spacing),
            fov_mm=(site.fov_mm[0], site.fov_mm[1], round(slices * spacing, 2)),
            slice_thickness_mm=round(spacing * draw(self.thickness_ratio), 2),
            first_echo_ms=draw(self.first_echo_ms, 1),
            echo_spacing_ms=draw(self.echo_spacing_ms, 1),
            orientation=str(rng.choice(list(self.orientations))),
        )


@dataclass(frozen=True)
class PhantomConfig:
    """Cohort-level settings of the phantom; defaults follow PHANTOM.md.

    ``midbrain_offset_mm`` bounds, per world axis, how far from the FOV centre the SN
    centre may land (mm); through-plane it is smaller, since a 40 mm slab must still hold
    the SN, RN and STN. ``head_model`` is ``mni``, a head on the real anatomy of the MNI
    ICBM152 template (``template``), or ``geometric``, a head drawn from ellipsoids;
    ``protocol_variation`` (None: each site's own protocol) draws every subject's
    protocol around its site's (``ProtocolVariation``). ``head_scale`` scales the geometric
    head's outline (brain, skull and scalp) around an
    unchanged brainstem: 1 is an adult head at the midbrain level; a smaller head fits a
    smaller field of view with air around it (fast test cohorts).
    """

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
    midbrain_offset_mm: tuple[float, float, float] = (15.0, 15.0, 5.0)
    head_model: str = "mni"
    head_scale: float = 1.0
    protocol_variation: ProtocolVariation | None = None

    def __post_init__(self) -> None:
        if self.subjects < 1:
            raise ValueError(f"subjects must be >= 1, got {self.subjects}")
        if not self.sites:
            raise ValueError("at least one site protocol is needed")
        if not 0.0 <= self.pd_fraction <= 1.0:
            raise ValueError(f"pd_fraction must be in [0, 1], got {self.pd_fraction}")
        if self.head_model not in HEAD_MODELS:
            raise ValueError(f"head_model must be one of {HEAD_MODELS}, got {self.head_model!r}")
        if not 0.5 <= self.head_scale <= 1.2:
            raise ValueError(f"head_scale must be in [0.5, 1.2], got {self.head_scale}")
        if self.head_model == "mni" and self.head_scale != 1.0:
            raise ValueError("head_scale scales the geometric head; the MNI head has its own")
        for site in self.sites:
            _check_midbrain_fits(site, self.offset_bound_mm(site))
            if self.protocol_variation is not None and not site.partial_brain:
                thinnest = replace(
                    site, fov_mm=(*site.fov_mm[:2], self.protocol_variation.fov_z_mm[0])
                )
                _check_midbrain_fits(thinnest, self.offset_bound_mm(site))

    def offset_bound_mm(self, site: SiteProtocol) -> tuple[float, float, float]:
        """Bound (mm, per world axis) on the SN centre's offset at ``site``: its own, else
        the cohort's ``midbrain_offset_mm``."""
        return site.midbrain_offset_mm or self.midbrain_offset_mm


def _check_midbrain_fits(site: SiteProtocol, offset_mm: tuple[float, float, float]) -> None:
    """Raise unless the midbrain, at its largest offset, stays inside the site's FOV."""
    extent = SLAB_HALF_EXTENT_MM if site.partial_brain else MIDBRAIN_HALF_EXTENT_MM
    for axis, fov, offset, half in zip("xyz", site.fov_mm, offset_mm, extent, strict=True):
        if fov < 2.0 * (offset + half):
            raise ValueError(
                f"site {site.name}: fov_mm {axis} = {fov:g} mm cannot hold the midbrain "
                f"(+/-{half:g} mm) at an offset of +/-{offset:g} mm; use fov_mm {axis} >= "
                f"{2.0 * (offset + half):g} or a smaller midbrain_offset_mm"
            )
