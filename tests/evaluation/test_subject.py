"""Per-subject evaluation on constructed volumes with hand-computed values."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sn_platform.data.slab import Slab, place_slab
from sn_platform.evaluation.cohort import summarise
from sn_platform.evaluation.measures import nm_volume_ratio
from sn_platform.evaluation.settings import MeasureSettings
from sn_platform.evaluation.subject import ReferenceCase, evaluate_case
from sn_platform.evaluation.tables import table_text

AFFINE = np.diag([0.5, 0.5, 1.0, 1.0])


ROI_ONLY = MeasureSettings(nm_reference="roi")


def _case() -> tuple[ReferenceCase, dict[str, np.ndarray], Slab]:
    shape = (20, 20, 10)
    manual = np.zeros(shape, bool)
    manual[4:12, 4:12, 3:8] = True  # 5 slices, only 3 inside the slab
    red_nucleus = np.zeros(shape, bool)
    red_nucleus[14:18, 14:18, 6:9] = True  # the slab below it: slices 3, 4, 5
    prediction = np.zeros(shape, bool)
    prediction[6:14, 4:12, 3:6] = True
    rng = np.random.default_rng(0)
    echo1 = rng.normal(100.0, 5.0, shape)
    echo1[4:8, 4:12, 3:8] += 30.0  # a bright "SNpc" in the medial part of the manual ROI
    echo1[4:6, 4:6, 3:5] += 100.0  # and a very bright core in two of the slab's slices
    chi = np.full(shape, 0.01)
    chi[:10] = 0.05
    labels = {"SN": manual, "RN": red_nucleus}
    case = ReferenceCase("01", "PD", AFFINE, echo1, echo1, chi, labels, {"SN": manual.copy()})
    predicted = {"SN": prediction, "RN": red_nucleus.copy()}
    return case, predicted, place_slab(red_nucleus, AFFINE, 3)


def test_overlap_is_measured_inside_the_slab():
    case, predicted, slab = _case()
    row = evaluate_case(case, predicted, slab, ROI_ONLY)
    # manual in the slab: 8 x 8 x 3 = 192 voxels; prediction 192; overlap 6 x 8 x 3 = 144.
    assert row["dsc"] == pytest.approx(2 * 144 / (192 + 192))
    assert row["dsc_truth"] == pytest.approx(0.75)
    assert row["sn_volume_mm3"] == pytest.approx(192 * 0.25)
    assert row["manual_volume_mm3"] == pytest.approx(192 * 0.25)
    assert row["hd95_mm"] == pytest.approx(1.0)  # the 2-voxel shift along x, 0.5 mm voxels
    assert row["slices_in_agreement"] == 3
    assert row["sn_volume_left_mm3"] + row["sn_volume_right_mm3"] == pytest.approx(48.0)
    assert row["dsc_rn"] == 1.0 and row["slab_offset_slices"] == 0.0
    assert row["rn_volume_mm3"] == pytest.approx(48 * 0.25)


def test_measures_use_each_roi_on_the_native_images():
    case, predicted, slab = _case()
    row = evaluate_case(case, predicted, slab, ROI_ONLY)
    assert row["chi_mean_ppm"] == pytest.approx(0.05)  # voxels at 0.01 ppm are below 0.015
    assert row["chi_mean_ppm_manual"] == pytest.approx(0.05)
    manual_in_slab = case.manual["SN"] & slab.mask
    assert row["nm_volume_ratio_manual"] == pytest.approx(1.0)  # the 8-voxel core twice
    assert row["nm_volume_ratio_manual"] == pytest.approx(nm_volume_ratio(case.nm, manual_in_slab))
    assert row["nm_volume_ratio"] == pytest.approx(nm_volume_ratio(case.nm, predicted["SN"]))
    assert row["nm_volume_ratio_manual"] != pytest.approx(
        nm_volume_ratio(case.nm, case.manual["SN"])
    )
    assert row["nm_volume_ratio_whole_manual"] == pytest.approx(
        nm_volume_ratio(case.nm, case.manual["SN"])
    )
    assert row["sn_volume_whole_mm3"] == pytest.approx(192 * 0.25)


def test_a_measure_whose_input_is_absent_is_nan_and_the_other_is_kept():
    case, predicted, slab = _case()
    both = evaluate_case(case, predicted, slab, ROI_ONLY)
    qsm_only = evaluate_case(dataclasses.replace(case, nm=None), predicted, slab, ROI_ONLY)
    nm_only = evaluate_case(dataclasses.replace(case, chi=None), predicted, slab, ROI_ONLY)
    for measure in ("nm_volume_ratio", "nm_volume_ratio_manual", "nm_volume_ratio_whole"):
        assert math.isnan(qsm_only[measure]) and nm_only[measure] == both[measure]
    assert nm_only["nm_volume_ratio_manual"] == pytest.approx(1.0)
    for measure in ("chi_mean_ppm", "chi_mean_ppm_manual", "chi_mean_ppm_whole"):
        assert math.isnan(nm_only[measure]) and qsm_only[measure] == pytest.approx(0.05)
    assert qsm_only["dsc"] == nm_only["dsc"] == both["dsc"] > 0


def test_a_slab_placed_off_the_manual_one_is_measured_against_the_manual_slab():
    case, predicted, _ = _case()
    higher = np.roll(predicted["RN"], 1, axis=2)
    slab = place_slab(higher, AFFINE, 3)  # slices 4, 5, 6
    row = evaluate_case(case, {"SN": predicted["SN"], "RN": higher}, slab, ROI_ONLY)
    assert row["slab_offset_slices"] == 1.0
    assert row["dsc"] == pytest.approx(2 * 144 / (192 + 192))  # in the manual slab
    assert row["sn_volume_mm3"] == pytest.approx(128 * 0.25)  # slices 4 and 5 of the SN


def test_without_a_reference_region_the_cc_ratio_is_nan():
    case, predicted, slab = _case()
    row = evaluate_case(case, predicted, slab)  # nm_reference CC; no CC anywhere
    assert math.isnan(row["nm_volume_ratio"]) and math.isnan(row["nm_volume_ratio_manual"])


def test_empty_prediction_gives_zero_dice_and_nan_distances():
    case, predicted, slab = _case()
    row = evaluate_case(case, {"SN": np.zeros_like(predicted["SN"])}, slab, ROI_ONLY)
    assert row["dsc"] == 0.0
    assert math.isnan(row["hd95_mm"]) and math.isnan(row["nm_volume_ratio"])
    assert row["sn_volume_mm3"] == 0.0


def test_summary_means_and_agreement():
    rows = [
        {"dsc": d, "hd95_mm": h, "nm_volume_ratio": n, "nm_volume_ratio_manual": n,
         "chi_mean_ppm": c, "chi_mean_ppm_manual": c + 0.01}
        for d, h, n, c in [(0.5, 2.0, 0.1, 0.10), (0.7, float("nan"), 0.2, 0.12),
                           (0.9, 4.0, 0.4, 0.15), (0.8, 3.0, 0.3, 0.11)]
    ]  # fmt: skip
    summary = summarise(rows, "val")
    assert summary["val/dsc"] == pytest.approx(0.725)
    assert summary["val/hd95_mm"] == pytest.approx(3.0)
    assert summary["val/nm_ratio_pearson_r"] == pytest.approx(1.0)
    assert summary["val/nm_ratio_icc"] == pytest.approx(1.0)
    assert summary["val/chi_mean_pearson_r"] == pytest.approx(1.0)
    assert summary["val/chi_mean_bias"] == pytest.approx(-0.01)
    assert summary["val/chi_mean_icc"] < 1.0  # absolute agreement sees the offset


def test_each_structure_s_dsc_averages_the_subjects_that_have_it():
    rows = [{"dsc": 0.8, "dsc_rn": 0.6, "dsc_cc": 0.5}, {"dsc": 0.6}, {"dsc": 0.7, "dsc_rn": 0.9}]
    summary = summarise(rows, "test")
    assert summary["test/dsc"] == pytest.approx(0.7)
    assert summary["test/dsc_rn"] == pytest.approx(0.75)  # the SN-only subject is not a 0
    assert summary["test/dsc_cc"] == pytest.approx(0.5)


def test_table_writes_bids_missing_values():
    text = table_text(
        [
            {"participant_id": "sub-01", "dsc": float("nan")},
            {"participant_id": "sub-02", "dsc": 0.5},
        ]
    )
    assert text.splitlines() == ["participant_id\tdsc", "sub-01\tn/a", "sub-02\t0.5"]
