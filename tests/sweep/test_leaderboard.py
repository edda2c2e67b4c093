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
    structure_dscs,
    unlearnt_structures,
)
from sn_platform.sweep.results import FoldResult
from sn_platform.sweep.settings import TuneSettings


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


LABELS = ["SN", "RN", "CC"]


def _entry(config_id: str, sn: float, rn: float, cc: float = 0.7) -> dict[str, object]:
    return {
        "config_id": config_id,
        "complete": True,
        "val/dsc": sn,
        "val/dsc_rn": rn,
        "val/dsc_cc": cc,
        "val/dsc_rn_fold_sd": 0.001,  # an SD, the truth's DSC and the SD across subjects:
        "val/dsc_truth": 0.01,  # none is a structure's DSC
        "val/dsc_sd": 0.02,
    }


def test_a_configuration_whose_rn_died_ranks_after_those_that_learnt_every_structure():
    dead_rn, learnt = _entry("c00", sn=0.80, rn=0.004), _entry("c01", sn=0.74, rn=0.55)
    assert structure_dscs(dead_rn, LABELS) == {
        "val/dsc": 0.80, "val/dsc_rn": 0.004, "val/dsc_cc": 0.7
    }  # fmt: skip
    # A label the validation subjects never carried (no metric) is not judged.
    assert structure_dscs(dead_rn, ["SN", "STN"]) == {"val/dsc": 0.80}
    ranked = rank([dead_rn, learnt], {"val/dsc": 1.0}, min_structure_dsc=0.1, labels=LABELS)
    assert [e["config_id"] for e in ranked] == ["c01", "c00"]
    assert ranked[0]["unlearnt"] == "" and ranked[1]["unlearnt"] == "val/dsc_rn 0.004"
    check_selectable(ranked, ["val/dsc"])  # the one that learnt every structure is crowned
    no_floor = rank([dead_rn, learnt], {"val/dsc": 1.0}, min_structure_dsc=None)
    assert [e["config_id"] for e in no_floor] == ["c00", "c01"]


def test_nothing_is_crowned_when_every_configuration_left_a_structure_unlearnt():
    entries = [_entry("c00", sn=0.80, rn=0.004), _entry("c01", sn=0.05, rn=0.3, cc=0.02)]
    ranked = rank(entries, {"val/dsc": 1.0}, min_structure_dsc=0.1, labels=LABELS)
    message = (
        r"every configuration left a structure unlearnt \(c00: val/dsc_rn 0.004; "
        r"c01: val/dsc 0.050, val/dsc_cc 0.020; .*tune.min_structure_dsc=null"
    )
    with pytest.raises(NothingToSelect, match=message):
        check_selectable(ranked, ["val/dsc"])
    assert unlearnt_structures({"val/dsc": math.nan}, LABELS, 0.1) == ""  # NaN is not judged
    # Only the network's labels are judged: an RN DSC below the floor of a model of SN only
    # (an RN metric from elsewhere) does not make it unlearnt.
    assert unlearnt_structures(_entry("c02", sn=0.8, rn=0.0), ["SN"], 0.1) == ""
    with pytest.raises(ValueError, match="min_structure_dsc needs the labels"):
        rank(entries, {"val/dsc": 1.0}, min_structure_dsc=0.1)
    with pytest.raises(ValueError, match=r"min_structure_dsc must be in \[0, 1\), got 1.2"):
        TuneSettings(min_structure_dsc=1.2)
