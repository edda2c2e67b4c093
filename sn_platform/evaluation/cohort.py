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

    Means skip NaN (an empty prediction has no HD95); ``dsc_rn``, ``dsc_cc`` average the
    subjects whose manual labels have that structure; agreement statistics use the
    subjects where both ROIs give a value; ``slab_within_one`` is the share of subjects
    whose slab lies within one slice of the manual one.
    """
    summary: dict[str, float] = {}
    # Each other structure's DSC (dsc_rn, dsc_cc) on the subjects whose manual labels have it.
    structures = sorted({k for r in rows for k in r if k.startswith("dsc_") and k != "dsc_truth"})
    keys = ("dsc", "hd95_mm", "dsc_truth", "hd95_truth_mm", "sn_volume_mm3", "centre_error_mm")
    for key in (*keys, *structures):
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
        effects = group_effects(rows, measure)
        summary |= {f"{prefix}/{name}_cohens_d_{source}": d for source, d in effects.items()}
        summary |= {f"{prefix}/{name}_{key}": v for key, v in truth_bias(rows, measure).items()}
    return summary


def _measure_agreement(rows: Sequence[dict[str, Any]], measure: str) -> measures.Agreement:
    """Automatic vs manual ROI agreement of one measure across the rows (missing: NaN)."""
    automatic = np.array([r[measure] for r in rows], dtype=float)
    manual = np.array([r.get(f"{measure}_manual", np.nan) for r in rows], dtype=float)
    return measures.agreement(automatic, manual)


ROI_SOURCES = {"automatic": "", "manual": "_manual", "truth": "_truth"}
GROUPS = ("PD", "HC")


def _column(rows: Sequence[dict[str, Any]], key: str, group: str | None = None) -> NDArray:
    return np.array(
        [float(r.get(key, np.nan)) for r in rows if group is None or r.get("group") == group]
    )


def group_effects(rows: Sequence[dict[str, Any]], measure: str) -> dict[str, float]:
    """Cohen's d (PD against HC) of one measure from each ROI the rows have (automatic,
    manual, truth): the group difference a study would report from each."""
    effects = {}
    for source, suffix in ROI_SOURCES.items():
        if any(f"{measure}{suffix}" in r for r in rows):
            patients, controls = (_column(rows, f"{measure}{suffix}", g) for g in GROUPS)
            effects[source] = measures.cohens_d(patients, controls)
    return effects


def group_effect_note(rows: Sequence[dict[str, Any]]) -> str:
    """Why Cohen's d PD-HC is n/a where a group has fewer than 2 subjects (the ``group``
    column of ``participants.tsv`` names them ``PD`` and ``HC``), with the other values the
    column holds; where the rows are scans of sessions, why each session's is (each
    participant counted once in it); empty when every group has 2 or more."""
    sessions = rows_by_session(rows)
    parts = [(f"{s}: ", part) for s, part in sessions.items()] if sessions else [("", rows)]
    short = []
    for where, part in parts:
        counts = {group: sum(r.get("group") == group for r in part) for group in GROUPS}
        if any(count < 2 for count in counts.values()):
            short.append(f"{where}PD {counts['PD']}, HC {counts['HC']}")
    if not short:
        return ""
    others = sorted({str(r.get("group", "n/a")) for r in rows} - set(GROUPS))
    found = f"; other values: {', '.join(others)}" if others else ""
    subjects = "participants of a session" if sessions else "subjects"
    return (
        f"Cohen's d PD-HC needs 2 or more {subjects} in each group (the group column of "
        f"participants.tsv: {'; '.join(short)}{found})"
    )


def truth_bias(rows: Sequence[dict[str, Any]], measure: str) -> dict[str, float]:
    """Bland-Altman bias (mean difference) of the automatic and the manual ROI's measure
    against the truth ROI's (phantom data); empty without truth."""
    if not any(f"{measure}_truth" in r for r in rows):
        return {}
    truth = _column(rows, f"{measure}_truth")
    return {
        f"bias_vs_truth_{source}": measures.agreement(
            _column(rows, f"{measure}{suffix}"), truth
        ).bland_altman_bias
        for source, suffix in ROI_SOURCES.items()
        if source != "truth" and any(f"{measure}{suffix}" in r for r in rows)
    }


def sessions_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The sessions (``ses-pre``) the rows name, sorted; empty without sessions."""
    return sorted({str(r["session_id"]) for r in rows if r.get("session_id") not in (None, "n/a")})


def rows_by_session(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each session the rows name (``sessions_of``) -> its rows; empty without sessions."""
    return {s: [r for r in rows if r.get("session_id") == s] for s in sessions_of(rows)}


def agreement_report(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per measure, for JSON: the agreement statistics of the automatic vs the manual ROI
    (over the rows with a manual value), the Bland-Altman bias of each ROI against truth
    (phantom), and the HC-vs-PD effect size (Cohen's d) from each ROI. Where the rows are
    scans of sessions, ``cohens_d`` counts a participant once per session, and
    ``cohens_d_by_session`` gives each session's own (each participant once)."""
    report: dict[str, dict[str, Any]] = {}
    for measure in MEASURES:
        entry: dict[str, Any] = {}
        with_manual = [r for r in rows if f"{measure}_manual" in r]
        if with_manual:
            entry |= _measure_agreement(with_manual, measure).to_dict()
        entry |= truth_bias(rows, measure)
        entry["cohens_d"] = group_effects(rows, measure)
        if sessions := rows_by_session(rows):
            entry["cohens_d_by_session"] = {
                session: group_effects(part, measure) for session, part in sessions.items()
            }
        report[measure] = entry
    return report


def _number(value: Any, digits: str = ".3f") -> str:
    """``value`` formatted, or ``n/a`` when it is missing or not finite (JSON null)."""
    if value is None or not math.isfinite(float(value)):
        return "n/a"
    return format(float(value), digits)


def report_lines(report: dict[str, dict[str, Any]], names: Sequence[str]) -> list[str]:
    """One readable line per measure in ``names`` of an ``agreement_report`` (or its JSON,
    where NaN is null): Pearson r and ICC auto vs manual, bias against truth, Cohen's d
    from each ROI (what exists)."""
    lines = []
    for measure in names:
        entry = report.get(measure, {})
        parts = [f"{key} {_number(entry[key])}" for key in ("pearson_r", "icc_2_1") if key in entry]
        parts += [
            f"bias vs truth ({key.removeprefix('bias_vs_truth_')}) {_number(entry[key], '.4g')}"
            for key in ("bias_vs_truth_automatic", "bias_vs_truth_manual")
            if key in entry
        ]
        effects = entry.get("cohens_d", {})
        by_session = entry.get("cohens_d_by_session", {})
        if effects:
            scans = " (every scan)" if by_session else ""
            parts.append(f"Cohen's d PD-HC{scans} {_effects_text(effects)}")
        parts += [f"{session} {_effects_text(values)}" for session, values in by_session.items()]
        lines.append(f"{measure}: " + ("; ".join(parts) or "n/a"))
    return lines


def _effects_text(effects: dict[str, Any]) -> str:
    """``automatic 1.23, manual 1.10``: Cohen's d from each ROI."""
    return ", ".join(f"{source} {_number(d, '.2f')}" for source, d in effects.items())
