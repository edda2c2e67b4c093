"""Cross-validation aggregation of sweep results and the ranking of configurations.

Per configuration: mean and SD across folds of every validation metric (``val/dsc``,
``val/dsc_sd``, ...) and the **pooled out-of-fold** agreement of the clinical measures
(``oof/nm_ratio_icc``, ``oof/chi_mean_pearson_r``, ...) over all validation subjects of all
folds. The selection score is a weighted sum of any of these. A configuration that left a
structure unlearnt (its cross-validated DSC below a floor: an RN that died, say) is ranked
after every one that learnt them all, and is never crowned: the slab hangs on the RN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from sn_platform.evaluation.cohort import summarise
from sn_platform.evaluation.subject import structure_dsc_key
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


def structure_dscs(entry: Mapping[str, Any], labels: Sequence[str]) -> dict[str, float]:
    """The entry's cross-validated DSC of each structure of ``labels`` it has a metric for:
    ``val/dsc`` (the SN, in the slab) and ``val/dsc_<label>`` (``val/dsc_rn``, ...)."""
    keys = (f"val/{structure_dsc_key(label)}" for label in labels)
    return {key: float(entry[key]) for key in keys if key in entry}


def unlearnt_structures(
    entry: Mapping[str, Any], labels: Sequence[str], min_dsc: float | None
) -> str:
    """Which structures of ``entry`` stayed below ``min_dsc`` (``val/dsc_rn 0.004``, joined
    by commas); empty when none did or there is no floor (a NaN DSC is not judged)."""
    if min_dsc is None:
        return ""
    return ", ".join(
        f"{key} {value:.3f}"
        for key, value in sorted(structure_dscs(entry, labels).items())
        if value < min_dsc
    )


def rank(
    entries: Sequence[dict[str, Any]],
    weights: Mapping[str, float],
    mode: str = "max",
    min_structure_dsc: float | None = None,
    labels: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Entries with ``score``, ``unlearnt`` and ``rank``, best first: those that learnt every
    structure of ``labels`` (the network's classes; a DSC of at least ``min_structure_dsc``
    each; None: no floor), then those that did not, then incomplete or NaN scores."""
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    if min_structure_dsc is not None and not labels:
        raise ValueError("min_structure_dsc needs the labels whose DSC it judges")
    scored = [
        {
            **e,
            "score": selection_score(e, weights) if e["complete"] else math.nan,
            "unlearnt": unlearnt_structures(e, labels, min_structure_dsc),
        }
        for e in entries
    ]
    sign = -1.0 if mode == "max" else 1.0
    scored.sort(
        key=lambda e: (
            not math.isfinite(e["score"]),
            bool(e["unlearnt"]),
            sign * np.nan_to_num(e["score"]),
        )
    )
    for position, entry in enumerate(scored, start=1):
        entry["rank"] = position
    return scored


class NothingToSelect(RuntimeError):
    """Every trial ended, yet no configuration can be selected (none finished all its
    folds, none has a finite score, or none learnt every structure)."""


def check_selectable(leaderboard: Sequence[Mapping[str, Any]], selection: Iterable[str]) -> None:
    """Raise NothingToSelect, saying why, unless the leaderboard's best has a finite score
    and learnt every structure."""
    if not leaderboard:
        raise NothingToSelect("no configuration finished all its folds: nothing to select")
    if not math.isfinite(leaderboard[0]["score"]):
        raise NothingToSelect(
            f"no configuration has a finite selection score ({', '.join(selection)}: "
            "undefined on these folds, as an ICC over too few subjects is): nothing to select; "
            "add subjects, or select on metrics these folds define (tune.selection)"
        )
    if leaderboard[0].get("unlearnt"):
        reasons = "; ".join(
            f"{e['config_id']}: {e['unlearnt']}" for e in leaderboard if e.get("unlearnt")
        )
        raise NothingToSelect(
            f"every configuration left a structure unlearnt ({reasons}; below "
            "tune.min_structure_dsc): nothing crowned; train longer (trainer.max_epochs), or "
            "crown the best anyway: the same command with tune.resume=true "
            "tune.min_structure_dsc=null"
        )
