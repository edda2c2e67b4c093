"""NM volume ratio, mean susceptibility and agreement on constructed inputs."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy import stats

from sn_platform.evaluation import cohort, measures
from sn_platform.evaluation.measures import agreement, chi_mean_ppm, icc, nm_volume_ratio


def test_nm_volume_ratio_of_a_constructed_roi():
    # 96 voxels at 0, three at 10, one at 30: mean 0.6, SD 3.43; m+1SD = 4.0, m+3SD = 10.9.
    values = np.array([0.0] * 96 + [10.0] * 3 + [30.0])
    echo1 = np.concatenate([values, np.full(28, 1000.0)]).reshape(4, 8, 4)
    roi = np.zeros(128, bool)
    roi[:100] = True
    assert nm_volume_ratio(echo1, roi.reshape(4, 8, 4)) == pytest.approx(1 / 4)


def test_nm_volume_ratio_with_a_reference_region():
    echo1 = np.zeros((2, 10, 1))
    echo1[0, :, 0] = [1.0, 2.5, 2.5, 4.0, 4.0, 4.0, 0.5, 0.5, 0.5, 0.5]  # ROI
    echo1[1, :, 0] = [-1.0, 1.0] * 5  # reference: mean 0, SD 1.054
    roi = np.zeros_like(echo1, bool)
    roi[0] = True
    # Above 1.054: 2.5, 2.5, 4, 4, 4 (5 voxels); above 3.162: 4, 4, 4 (3 voxels).
    assert nm_volume_ratio(echo1, roi, reference=~roi) == pytest.approx(3 / 5)


def test_chi_mean_over_threshold():
    chi = np.array([0.01, 0.02, 0.1, -0.05, 0.3]).reshape(5, 1, 1)
    roi = np.array([True, True, True, True, False]).reshape(5, 1, 1)
    assert chi_mean_ppm(chi, roi) == pytest.approx(0.06)
    assert chi_mean_ppm(chi, roi, threshold_ppm=0.05) == pytest.approx(0.1)


def test_empty_rois_give_nan_and_a_warning():
    image = np.ones((3, 3, 3))
    empty = np.zeros_like(image, bool)
    with pytest.warns(RuntimeWarning, match="empty"):
        assert np.isnan(nm_volume_ratio(image, empty))
    with pytest.warns(RuntimeWarning, match="above"):
        assert np.isnan(chi_mean_ppm(image * 0.0, ~empty))
    with pytest.warns(RuntimeWarning, match="mean \\+ 1 SD"):
        assert np.isnan(nm_volume_ratio(image, ~empty))


def test_agreement_of_identical_and_shifted_measurements():
    a = np.array([1.0, 2.0, 3.0, 4.0, 6.0])
    same = agreement(a, a)
    assert same.pearson_r == pytest.approx(1.0) and same.icc_3_1 == pytest.approx(1.0)
    assert same.bland_altman_bias == 0.0 and same.loa_low == 0.0
    shifted = agreement(a, a + 1.0)
    assert shifted.icc_3_1 == pytest.approx(1.0)
    # By hand: MSR = k var(a) = 7.4, MSC = n (0.5^2 + 0.5^2) / 1 = 2.5, MSE = 0,
    # ICC(2,1) = MSR / (MSR + k (MSC - MSE) / n) = 7.4 / 8.4.
    assert shifted.icc_2_1 == pytest.approx(7.4 / 8.4)
    assert shifted.bland_altman_bias == pytest.approx(-1.0)
    assert (shifted.loa_low, shifted.loa_high) == (pytest.approx(-1.0), pytest.approx(-1.0))


def test_agreement_drops_nan_pairs_and_needs_three():
    result = agreement([1.0, np.nan, 3.0, 4.0], [1.1, 2.0, np.nan, 3.9])
    assert result.n == 2 and np.isnan(result.pearson_r)
    with pytest.raises(ValueError, match="same length"):
        agreement([1.0], [1.0, 2.0])


def test_agreement_against_scipy_and_pingouin():
    import pandas as pd
    import pingouin

    rng = np.random.default_rng(4)
    manual = rng.normal(0.1, 0.02, 25)
    automatic = manual * 0.9 + 0.012 + rng.normal(0, 0.006, 25)
    result = agreement(automatic, manual)
    reference = stats.pearsonr(automatic, manual)
    interval = reference.confidence_interval(0.95)
    assert result.pearson_r == pytest.approx(reference.statistic, rel=1e-6)
    assert (result.pearson_ci_low, result.pearson_ci_high) == (
        pytest.approx(interval.low, rel=1e-6),
        pytest.approx(interval.high, rel=1e-6),
    )
    assert result.spearman_rho == pytest.approx(
        stats.spearmanr(automatic, manual).statistic, rel=1e-6
    )
    table = pd.DataFrame(
        {
            "subject": np.tile(np.arange(25), 2),
            "rater": np.repeat(["auto", "manual"], 25),
            "value": np.concatenate([automatic, manual]),
        }
    )
    icc_table = pingouin.intraclass_corr(
        table, targets="subject", raters="rater", ratings="value"
    ).set_index("Type")
    assert result.icc_3_1 == pytest.approx(icc_table.loc["ICC(C,1)", "ICC"], rel=1e-6)
    assert result.icc_2_1 == pytest.approx(icc_table.loc["ICC(A,1)", "ICC"], rel=1e-6)
    assert icc(np.column_stack([automatic, manual])) == (result.icc_3_1, result.icc_2_1)


def test_cohens_d_against_the_pooled_sd_formula():
    patients, controls = [1.0, 2.0, 3.0, float("nan")], [3.0, 4.0, 5.0, 6.0]
    # Means 2 and 4.5; variances 1 and 5/3 (ddof 1); pooled (2*1 + 3*5/3) / 5 = 1.4.
    expected = (2.0 - 4.5) / statistics.sqrt(1.4)
    assert measures.cohens_d(patients, controls) == pytest.approx(expected)
    assert math.isnan(measures.cohens_d([1.0], controls))
    assert math.isnan(measures.cohens_d([2.0, 2.0], [2.0, 2.0]))


def test_group_effects_and_truth_bias_of_constructed_rows():
    rows = [
        {"group": g, "nm_volume_ratio": a, "nm_volume_ratio_manual": m, "nm_volume_ratio_truth": t}
        for g, a, m, t in [
            ("PD", 0.10, 0.12, 0.11), ("PD", 0.20, 0.22, 0.21),
            ("HC", 0.30, 0.32, 0.31), ("HC", 0.40, 0.42, 0.41),
        ]
    ]  # fmt: skip
    effects = cohort.group_effects(rows, "nm_volume_ratio")
    # Every ROI: means 0.15 vs 0.35 (shifted alike), SD 0.0707 in each group.
    expected = -0.2 / statistics.stdev([0.10, 0.20])
    assert effects == pytest.approx({"automatic": expected, "manual": expected, "truth": expected})
    bias = cohort.truth_bias(rows, "nm_volume_ratio")
    assert bias == pytest.approx({"bias_vs_truth_automatic": -0.01, "bias_vs_truth_manual": 0.01})
    report = cohort.agreement_report(rows)["nm_volume_ratio"]
    assert report["cohens_d"]["truth"] == pytest.approx(expected) and report["n"] == 4


def test_report_lines_read_the_json_report_where_nan_is_null():
    report = {"chi_mean_ppm": {"pearson_r": None, "icc_2_1": 0.9, "cohens_d": {"automatic": None}}}
    (line,) = cohort.report_lines(report, ["chi_mean_ppm"])
    assert line == "chi_mean_ppm: pearson_r n/a; icc_2_1 0.900; Cohen's d PD-HC automatic n/a"


def test_cohens_d_says_why_it_is_missing_when_a_group_is_too_small():
    groups = [("control", 0.5), ("patient", 0.3), ("PD", 0.2), ("HC", 0.6), ("HC", 0.55)]
    rows = [{"group": group, "nm_volume_ratio": value} for group, value in groups]
    assert math.isnan(cohort.group_effects(rows, "nm_volume_ratio")["automatic"])
    assert cohort.group_effect_note(rows) == (
        "Cohen's d PD-HC needs 2 or more subjects in each group (the group column of "
        "participants.tsv: PD 1, HC 2; other values: control, patient)"
    )
    rows.append({"group": "PD", "nm_volume_ratio": 0.25})
    assert cohort.group_effect_note(rows) == ""
    assert math.isfinite(cohort.group_effects(rows, "nm_volume_ratio")["automatic"])
    # Two sessions of the same participants: 4 scans of PD, yet each session has 2 PD, 1 HC.
    visits = [
        {"group": group, "session_id": session, "nm_volume_ratio": 0.4}
        for session in ("ses-1", "ses-2")
        for group in ("PD", "PD", "HC")
    ]
    visits.append({"group": "HC", "session_id": "ses-1", "nm_volume_ratio": 0.5})
    assert cohort.group_effect_note(visits) == (
        "Cohen's d PD-HC needs 2 or more participants of a session in each group (the group "
        "column of participants.tsv: ses-2: PD 2, HC 1)"
    )


def test_cohens_d_of_each_session_counts_each_participant_once():
    values = {  # (participant, group): NM ratio at ses-1, ses-2
        ("01", "PD"): (0.10, 0.05), ("02", "PD"): (0.20, 0.15),
        ("03", "HC"): (0.30, 0.30), ("04", "HC"): (0.40, 0.40),
    }  # fmt: skip
    rows = [
        {
            "participant_id": f"sub-{p}",
            "session_id": f"ses-{k + 1}",
            "group": g,
            "nm_volume_ratio": v,
        }
        for (p, g), pair in values.items()
        for k, v in enumerate(pair)
    ]
    report = cohort.agreement_report(rows)["nm_volume_ratio"]
    by_session = report["cohens_d_by_session"]
    assert list(by_session) == ["ses-1", "ses-2"]
    # Each session: PD and HC SD 0.0707 alike; means differ by 0.20 and 0.25.
    sd = statistics.stdev([0.10, 0.20])
    assert by_session["ses-1"]["automatic"] == pytest.approx(-0.20 / sd)
    assert by_session["ses-2"]["automatic"] == pytest.approx(-0.25 / sd)
    pooled = measures.cohens_d([0.10, 0.05, 0.20, 0.15], [0.30, 0.30, 0.40, 0.40])
    assert report["cohens_d"]["automatic"] == pytest.approx(pooled)
    (line,) = cohort.report_lines({"nm_volume_ratio": report}, ["nm_volume_ratio"])
    assert line == (
        f"nm_volume_ratio: Cohen's d PD-HC (every scan) automatic {pooled:.2f}; "
        f"ses-1 automatic {-0.20 / sd:.2f}; ses-2 automatic {-0.25 / sd:.2f}"
    )
    without_sessions = [{k: v for k, v in r.items() if k != "session_id"} for r in rows]
    assert "cohens_d_by_session" not in cohort.agreement_report(without_sessions)["nm_volume_ratio"]
