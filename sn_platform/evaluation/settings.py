"""The ``measures`` config group as one typed object: how the clinical measures are taken."""

from __future__ import annotations

from dataclasses import dataclass

from sn_platform.evaluation.measures import CHI_THRESHOLD_PPM

NM_REFERENCES = ("CC", "roi")


@dataclass(frozen=True)
class MeasureSettings:
    """Which voxels set the NM volume ratio's thresholds, and the QSM threshold.

    Parameters
    ----------
    nm_reference : ``CC``: mean and SD of the crus cerebri inside the same extent as the
        ROI (the slab, or the whole volume for ``_whole`` measures), the NM-MRI convention
        and the default; ``roi``: of the ROI's own voxels (the method's literal reading)
    reference_label : name of the reference region's label (``CC``)
    chi_threshold_ppm : QSM values above this count in the mean susceptibility (ppm)
    """

    nm_reference: str = "CC"
    reference_label: str = "CC"
    chi_threshold_ppm: float = CHI_THRESHOLD_PPM

    def __post_init__(self) -> None:
        if self.nm_reference not in NM_REFERENCES:
            raise ValueError(
                f"nm_reference must be one of {NM_REFERENCES}, got {self.nm_reference!r}"
            )
