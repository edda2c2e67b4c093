"""Cross-validation aggregation of sweep results and the ranking of configurations.

Per configuration: mean and SD across folds of every validation metric (``val/dsc``,
``val/dsc_sd``, ...) and the **pooled out-of-fold** agreement of the clinical measures
(``oof/nm_ratio_icc``, ``oof/chi_mean_pearson_r``, ...) over all validation subjects of all
folds. The selection score is a weighted sum of any of these.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from sn_platform.evaluation.cohort import summarise
from sn_platform.sweep.results import FoldResult


def aggregate(results: Sequence[FoldResult], folds: int) -> list[dict[str, Any]]:
    """One leaderboard entry per configuration; ``complete`` when all ``folds`` finished."""
    by_config: dict[str, list[FoldResult]] = {}
    for result in results:
        by_config.setdefault(result.config_id, []).append(result)
    entries = []
    for config_id, members in sorted(by_config.items()):
        members = sorted(members, key=lambda r: r.fold)
        entry: dict[str, Any] = {
            "config_id": config_id,
            **members[0].overrides,
            "folds_completed": len({m.fold for m in members}),
            "complete": len({m.fold for m in members}) == folds,
        }
        keys = sorted({k for m in members for k in m.metrics if k.startswith("best/val/")})
        for key in keys:
            values = np.array([m.metrics.get(key, math.nan) for m in members], dtype=float)
            name = key.removeprefix("best/")
            finite = values[np.isfinite(values)]
            entry[name] = float(finite.mean()) if finite.size else math.nan
            entry[f"{name}_fold_sd"] = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
        entry |= summarise([row for m in members for row in m.rows], "oof")
        entries.append(entry)
    return entries


def selection_score(entry: Mapping[str, Any], weights: Mapping[str, float]) -> float:
    """``sum(weight * entry[metric])``; NaN when a weighted metric is missing or NaN."""
    total = 0.0
    for metric, weight in weights.items():
        value = float(entry.get(metric, math.nan))
        if not math.isfinite(value):
            return math.nan
        total += weight * value
    return total


def rank(
    entries: Sequence[dict[str, Any]], weights: Mapping[str, float], mode: str = "max"
) -> list[dict[str, Any]]:
    """Entries with ``score`` and ``rank``, best first; incomplete or NaN scores last."""
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    scored = [
        {**e, "score": selection_score(e, weights) if e["complete"] else math.nan} for e in entries
    ]
    sign = -1.0 if mode == "max" else 1.0
    scored.sort(key=lambda e: (not math.isfinite(e["score"]), sign * np.nan_to_num(e["score"])))
    for position, entry in enumerate(scored, start=1):
        entry["rank"] = position
    return scored


class NothingToSelect(RuntimeError):
    """Every trial ended, yet no configuration can be selected (none finished all its
    folds, or none has a finite score)."""


def check_selectable(leaderboard: Sequence[Mapping[str, Any]], selection: Iterable[str]) -> None:
    """Raise NothingToSelect, saying why, unless the leaderboard's best has a finite score."""
    if not leaderboard:
        raise NothingToSelect("no configuration finished all its folds: nothing to select")
    if not math.isfinite(leaderboard[0]["score"]):
        raise NothingToSelect(
            f"no configuration has a finite selection score ({', '.join(selection)}: "
            "undefined on these folds, as an ICC over too few subjects is): nothing to select; "
            "add subjects, or select on metrics these folds define (tune.selection)"
        )
