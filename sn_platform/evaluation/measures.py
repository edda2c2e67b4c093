"""The method's clinical measures and their agreement across subjects.

NM volume ratio (echo 1)::

    #(voxels > mean + 3 SD) / #(voxels > mean + 1 SD)

with mean and SD (ddof = 1) of the ROI's own echo-1 values, or of a reference region
(crus cerebri) when one is given. Mean susceptibility: mean QSM value (ppm) over ROI voxels
above ``chi_th`` = 0.015 ppm. An empty ROI gives NaN and a warning, never an exception.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

CHI_THRESHOLD_PPM = 0.015


def nm_volume_ratio(echo1: NDArray, roi: NDArray, reference: NDArray | None = None) -> float:
    """NM volume ratio of ``roi`` on the echo-1 magnitude (X, Y, Z).

    Parameters
    ----------
    echo1 : echo-1 magnitude image (a.u.)
    roi : binary ROI of the same shape (the SN mask)
    reference : optional binary reference region whose mean and SD set the thresholds
    """
    roi = np.asarray(roi).astype(bool)
    values = np.asarray(echo1, dtype=np.float64)[roi]
    statistics_from = (
        values
        if reference is None
        else np.asarray(echo1, dtype=np.float64)[np.asarray(reference).astype(bool)]
    )
    if values.size == 0 or statistics_from.size < 2:
        warnings.warn(
            "NM volume ratio of an empty ROI or reference is undefined: NaN",
            RuntimeWarning,
            stacklevel=2,
        )
        return float("nan")
    mean, sd = statistics_from.mean(), statistics_from.std(ddof=1)
    above_one_sd = np.count_nonzero(values > mean + sd)
    if above_one_sd == 0:
        warnings.warn(
            "no ROI voxel above mean + 1 SD: NM volume ratio is NaN", RuntimeWarning, stacklevel=2
        )
        return float("nan")
    return float(np.count_nonzero(values > mean + 3 * sd) / above_one_sd)


def chi_mean_ppm(chi: NDArray, roi: NDArray, threshold_ppm: float = CHI_THRESHOLD_PPM) -> float:
    """Mean susceptibility (ppm) of the ROI voxels whose chi exceeds ``threshold_ppm``."""
    values = np.asarray(chi, dtype=np.float64)[np.asarray(roi).astype(bool)]
    values = values[values > threshold_ppm]
    if values.size == 0:
        warnings.warn(
            f"no ROI voxel above {threshold_ppm} ppm: mean susceptibility is NaN",
            RuntimeWarning,
            stacklevel=2,
        )
        return float("nan")
    return float(values.mean())


@dataclass(frozen=True)
class Agreement:
    """Agreement between two measurements of the same subjects (method A vs B).

    Bland-Altman differences are A - B; limits of agreement bias +/- 1.96 SD.
    """

    n: int
    pearson_r: float
    pearson_ci_low: float
    pearson_ci_high: float
    spearman_rho: float
    icc_3_1: float
    icc_2_1: float
    bland_altman_bias: float
    bland_altman_sd: float
    loa_low: float
    loa_high: float

    def to_dict(self) -> dict[str, float]:
        """Plain dict (for JSON and metric logging)."""
        return asdict(self)


def icc(ratings: NDArray) -> tuple[float, float]:
    """ICC(3,1) consistency and ICC(2,1) absolute agreement (Shrout and Fleiss 1979).

    ``ratings`` is (n subjects, k raters) without NaN; two-way ANOVA mean squares.
    """
    ratings = np.asarray(ratings, dtype=np.float64)
    n, k = ratings.shape
    grand = ratings.mean()
    ss_rows = k * ((ratings.mean(axis=1) - grand) ** 2).sum()
    ss_columns = n * ((ratings.mean(axis=0) - grand) ** 2).sum()
    ss_error = ((ratings - grand) ** 2).sum() - ss_rows - ss_columns
    ms_rows = ss_rows / (n - 1)
    ms_columns = ss_columns / (k - 1)
    ms_error = ss_error / ((n - 1) * (k - 1))
    icc_3_1 = (ms_rows - ms_error) / (ms_rows + (k - 1) * ms_error)
    icc_2_1 = (ms_rows - ms_error) / (
        ms_rows + (k - 1) * ms_error + k * (ms_columns - ms_error) / n
    )
    return float(icc_3_1), float(icc_2_1)


def agreement(method_a: NDArray, method_b: NDArray, confidence: float = 0.95) -> Agreement:
    """Pearson r (Fisher-z CI), Spearman rho, ICC(3,1), ICC(2,1) and Bland-Altman statistics.

    Pairs with a NaN on either side are dropped; fewer than 3 pairs (4 for the CI) give NaN.
    """
    a = np.asarray(method_a, dtype=np.float64)
    b = np.asarray(method_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(
            f"two measurement sets must have the same length, got {a.shape} and {b.shape}"
        )
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = int(a.size)
    nan = float("nan")
    if n < 3:
        return Agreement(n, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan)
    differences = a - b
    bias, sd = float(differences.mean()), float(differences.std(ddof=1))
    constant = np.ptp(a) == 0 or np.ptp(b) == 0
    r = nan if constant else float(stats.pearsonr(a, b)[0])
    rho = nan if constant else float(stats.spearmanr(a, b)[0])
    low = high = nan
    if n > 3 and math.isfinite(r) and abs(r) < 1:
        z = math.atanh(r)
        half_width = stats.norm.ppf(0.5 + confidence / 2) / math.sqrt(n - 3)
        low, high = math.tanh(z - half_width), math.tanh(z + half_width)
    icc_3_1, icc_2_1 = icc(np.column_stack([a, b]))
    return Agreement(
        n, r, low, high, rho, icc_3_1, icc_2_1, bias, sd, bias - 1.96 * sd, bias + 1.96 * sd
    )


def cohens_d(first: NDArray, second: NDArray) -> float:
    """Cohen's d of ``first`` against ``second``: the difference of the means over the
    pooled SD (each group's SD with ddof 1). NaN skipped; NaN when a group has fewer than
    2 values or the pooled SD is 0."""
    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 2 or b.size < 2:
        return float("nan")
    pooled = ((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2)
    if pooled <= 0:
        return float("nan")
    return float((a.mean() - b.mean()) / math.sqrt(pooled))
