"""Cohort agreement: mean overlap and the agreement (Pearson r with CI, Spearman, ICC,
Bland-Altman) of both measures between automatic and manual ROIs across subjects."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sn_platform.evaluation import measures
from sn_platform.evaluation.subject import MEASURE_METRIC_NAMES, MEASURES


@dataclass
class Evaluation:
    """Per-subject rows, cohort metrics and the binary masks (native grid) behind them."""

    rows: list[dict[str, Any]]
    metrics: dict[str, float]
    masks: dict[str, NDArray[np.bool_]]


def _finite_mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def summarise(rows: Sequence[dict[str, Any]], prefix: str) -> dict[str, float]:
    """Cohort metrics of per-subject rows, keyed ``{prefix}/dsc``, ``{prefix}/nm_ratio_icc`` ...

    Means skip NaN (an empty prediction has no HD95); agreement statistics use the
    subjects where both ROIs give a value; ``slab_within_one`` is the share of subjects
    whose slab lies within one slice of the manual one.
    """
    summary: dict[str, float] = {}
    for key in ("dsc", "hd95_mm", "dsc_truth", "hd95_truth_mm", "sn_volume_mm3", "centre_error_mm"):
        values = [float(r[key]) for r in rows if key in r]
        if values:
            summary[f"{prefix}/{key}"] = _finite_mean(values)
    offsets = [abs(float(r["slab_offset_slices"])) for r in rows if "slab_offset_slices" in r]
    if offsets:
        # An unplaced slab (NaN) counts as a miss.
        summary[f"{prefix}/slab_offset_abs"] = _finite_mean(offsets)
        summary[f"{prefix}/slab_within_one"] = float(np.mean([o <= 1.0 for o in offsets]))
    if any("dsc" in r for r in rows):
        summary[f"{prefix}/dsc_sd"] = float(np.nanstd([r["dsc"] for r in rows], ddof=0))
    for measure in MEASURES:
        manual = [float(r.get(f"{measure}_manual", float("nan"))) for r in rows]
        if not any(math.isfinite(v) for v in manual):
            continue
        stats = _measure_agreement(rows, measure)
        name = MEASURE_METRIC_NAMES[measure]
        summary |= {
            f"{prefix}/{name}_pearson_r": stats.pearson_r,
            f"{prefix}/{name}_spearman_rho": stats.spearman_rho,
            f"{prefix}/{name}_icc": stats.icc_2_1,
            f"{prefix}/{name}_bias": stats.bland_altman_bias,
        }
    return summary


def _measure_agreement(rows: Sequence[dict[str, Any]], measure: str) -> measures.Agreement:
    """Automatic vs manual ROI agreement of one measure across the rows (missing: NaN)."""
    automatic = np.array([r[measure] for r in rows], dtype=float)
    manual = np.array([r.get(f"{measure}_manual", np.nan) for r in rows], dtype=float)
    return measures.agreement(automatic, manual)


def agreement_report(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Full agreement statistics (automatic vs manual ROI) of both measures, for JSON."""
    return {
        measure: _measure_agreement(rows, measure).to_dict()
        for measure in MEASURES
        if all(f"{measure}_manual" in r for r in rows)
    }
