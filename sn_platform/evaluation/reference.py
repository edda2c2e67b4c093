"""The clinical measures of one ROI within an extent (the slab, or the whole volume), with
the NM volume ratio thresholded against a reference region in the same extent."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sn_platform.evaluation import measures
from sn_platform.evaluation.settings import MeasureSettings


def _quiet(function: Callable[..., float], *args: Any) -> float:
    """A measure whose undefined cases (empty ROI) are NaN, without a warning per subject."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(function(*args))


def roi_measures(
    nm_image: NDArray[np.float64] | None,
    chi: NDArray[np.float64] | None,
    roi: NDArray[np.bool_],
    reference: NDArray[np.bool_] | None,
    extent: NDArray[np.bool_] | None,
    settings: MeasureSettings,
) -> dict[str, float]:
    """NM volume ratio and mean susceptibility (ppm) of ``roi`` inside ``extent``.

    Parameters
    ----------
    nm_image, chi : (X, Y, Z) NM-weighted magnitude (echo 1 or an NM image; a.u.) and QSM
        (ppm); either None (the input does not exist): its measure is NaN
    roi : (X, Y, Z) bool, the SN
    reference : (X, Y, Z) bool, the reference region (crus cerebri), or None when there is
        none; with ``settings.nm_reference == "CC"`` a missing or empty one gives NaN
    extent : (X, Y, Z) bool, where both ROI and reference are taken (the slab), or None
        for the whole volume
    settings : which reference, which QSM threshold
    """
    inside = np.ones(roi.shape, dtype=bool) if extent is None else extent
    roi = roi & inside
    if nm_image is None:
        nm = float("nan")
    elif settings.nm_reference == "roi":
        nm = _quiet(measures.nm_volume_ratio, nm_image, roi)
    elif reference is None:
        nm = float("nan")
    else:
        nm = _quiet(measures.nm_volume_ratio, nm_image, roi, reference & inside)
    chi_mean = (
        float("nan")
        if chi is None
        else _quiet(measures.chi_mean_ppm, chi, roi, settings.chi_threshold_ppm)
    )
    return {"nm_volume_ratio": nm, "chi_mean_ppm": chi_mean}
