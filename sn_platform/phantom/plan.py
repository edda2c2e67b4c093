"""What is drawn for one phantom subject before any image is computed: its tissue
properties and its plan (site, pose, head, nuclei, noise, artefacts)."""

from __future__ import annotations

from dataclasses import dataclass

from sn_platform.phantom import anatomy as anat
from sn_platform.phantom.regions import Pose
from sn_platform.phantom.settings import SiteProtocol
from sn_platform.phantom.surroundings import HeadAnatomy
from sn_platform.phantom.template import TemplateHead


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
    stn_contrast: float
    stn_r2star: float
    stn_chi: float
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
    pose: Pose
    head: HeadAnatomy | TemplateHead
    sides: dict[str, anat.SideAnatomy]
    tissue: TissueParameters
    snr: float
    intensity_scale: float
    bias_amplitude: float
    has_vessel: bool
    has_pulsation: bool
    rater_jitter_sd_mm: tuple[float, float]
