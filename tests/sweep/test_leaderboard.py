"""Cross-validation aggregation and ranking of sweep configurations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from sn_platform.sweep.leaderboard import (
    NothingToSelect,
    aggregate,
    check_selectable,
    rank,
    selection_score,
)
from sn_platform.sweep.results import FoldResult


def _rows(offset: int, chi_auto: list[float], chi_manual: list[float]) -> list[dict]:
    return [
        {"participant_id": f"sub-{offset + i}", "nm_volume_ratio": 0.1 * i,
         "nm_volume_ratio_manual": 0.1 * i + 0.01, "chi_mean_ppm": a, "chi_mean_ppm_manual": m}
        for i, (a, m) in enumerate(zip(chi_auto, chi_manual, strict=True))
    ]  # fmt: skip


def _results() -> list[FoldResult]:
    return [
        FoldResult("c00", 0, {"optim.lr": 0.001}, {"best/val/dsc": 0.80},
                   _rows(0, [0.10, 0.12, 0.15], [0.11, 0.12, 0.16])),
        FoldResult("c00", 1, {"optim.lr": 0.001}, {"best/val/dsc": 0.84},
                   _rows(10, [0.09, 0.14, 0.13], [0.10, 0.15, 0.12])),
        FoldResult("c01", 0, {"optim.lr": 0.01}, {"best/val/dsc": 0.90},
                   _rows(0, [0.1] * 3, [0.1] * 3)),
    ]  # fmt: skip


def test_fold_means_and_pooled_out_of_fold_agreement():
    entries = {e["config_id"]: e for e in aggregate(_results(), folds=2)}
    first = entries["c00"]
    assert first["complete"] and first["folds_completed"] == 2
    assert first["optim.lr"] == 0.001
    assert first["val/dsc"] == pytest.approx(0.82)
    assert first["val/dsc_fold_sd"] == pytest.approx(np.std([0.80, 0.84], ddof=1))
    auto = [0.10, 0.12, 0.15, 0.09, 0.14, 0.13]
    manual = [0.11, 0.12, 0.16, 0.10, 0.15, 0.12]
    assert first["oof/chi_mean_pearson_r"] == pytest.approx(stats.pearsonr(auto, manual)[0])
    assert first["oof/nm_ratio_pearson_r"] == pytest.approx(1.0)
    assert not entries["c01"]["complete"]


def test_ranking_by_a_weighted_score_puts_incomplete_configurations_last():
    weights = {"val/dsc": 1.0, "oof/chi_mean_pearson_r": 0.5}
    ranked = rank(aggregate(_results(), folds=2), weights)
    assert [e["config_id"] for e in ranked] == ["c00", "c01"]
    expected = 0.82 + 0.5 * ranked[0]["oof/chi_mean_pearson_r"]
    assert ranked[0]["score"] == pytest.approx(expected) and ranked[0]["rank"] == 1
    assert math.isnan(ranked[1]["score"])


def test_score_of_a_missing_metric_is_nan_and_min_mode_reverses():
    assert math.isnan(selection_score({"val/dsc": 0.8}, {"oof/chi_mean_icc": 1.0}))
    entries = [
        {"config_id": "a", "complete": True, "val/hd95_mm": 3.0},
        {"config_id": "b", "complete": True, "val/hd95_mm": 2.0},
    ]
    ranked = rank(entries, {"val/hd95_mm": 1.0}, mode="min")
    assert [e["config_id"] for e in ranked] == ["b", "a"]


def test_a_leaderboard_without_a_finite_best_says_why_nothing_is_selected():
    with pytest.raises(NothingToSelect, match="no configuration finished all its folds"):
        check_selectable([], ["val/dsc"])
    undefined = [{"config_id": "c00", "score": math.nan}]
    with pytest.raises(NothingToSelect, match=r"finite selection score \(oof/chi_mean_icc: "):
        check_selectable(undefined, ["oof/chi_mean_icc"])
    check_selectable([{"config_id": "c00", "score": 0.8}, *undefined], ["val/dsc"])
