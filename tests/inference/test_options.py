"""sn-infer's options override a model's inference settings only where they are given."""

from __future__ import annotations

import pytest

from sn_platform.inference.options import InferenceOptions
from sn_platform.inference.predictor import InferenceSettings

MODEL = InferenceSettings(patch_size=(32, 32, 3), patch_overlap=(8, 8, 0), flip_tta=True)


def test_unset_options_keep_the_models_settings():
    assert InferenceOptions().settings(MODEL) == MODEL


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"flip_tta": False}, {"flip_tta": False}),
        ({"threshold": 0.3}, {"threshold": 0.3}),
        ({"patch_overlap": [16, 16, 0]}, {"patch_overlap": (16, 16, 0)}),
        ({"overlap_mode": "hann", "batch_size": 2}, {"overlap_mode": "hann", "batch_size": 2}),
    ],
)
def test_given_options_override_only_their_own_setting(given, expected):
    settings = InferenceOptions(**given).settings(MODEL)
    for name, value in expected.items():
        assert getattr(settings, name) == value
    unchanged = {"patch_size", "patch_overlap", "overlap_mode", "batch_size", "threshold"}
    for name in unchanged - set(expected):
        assert getattr(settings, name) == getattr(MODEL, name)


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="engine must be one of"):
        InferenceOptions(engine="spark")


CALIBRATED = InferenceSettings(labels=("SN", "RN", "CC"), label_thresholds={"RN": 0.3, "CC": 0.4})


def test_a_models_per_label_thresholds_apply_to_their_labels_only():
    assert [CALIBRATED.threshold_of(n) for n in ("SN", "RN", "CC")] == [0.5, 0.3, 0.4]
    assert InferenceSettings.from_dict(CALIBRATED.to_dict()) == CALIBRATED


def test_one_threshold_replaces_the_models_per_label_ones_and_label_thresholds_merge():
    every = InferenceOptions(threshold=0.45).settings(CALIBRATED)
    assert [every.threshold_of(n) for n in ("SN", "RN", "CC")] == [0.45] * 3
    merged = InferenceOptions(label_thresholds={"RN": 0.35, "SN": 0.6}).settings(CALIBRATED)
    assert merged.label_thresholds == {"RN": 0.35, "CC": 0.4, "SN": 0.6}
    assert InferenceOptions().settings(CALIBRATED) == CALIBRATED


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"label_thresholds": {"RN": 1.2}}, r"label_thresholds.RN must be in \(0, 1\), got 1.2"),
        ({"label_thresholds": {"GP": 0.4}}, r"label_thresholds names \['GP'\], which are not"),
    ],
)
def test_a_bad_label_threshold_is_refused(given, message):
    with pytest.raises(ValueError, match=message):
        InferenceSettings(labels=("SN", "RN"), **given)


def test_an_option_naming_a_label_the_model_lacks_is_refused():
    with pytest.raises(ValueError, match=r"label_thresholds names \['RN'\]"):
        InferenceOptions(label_thresholds={"RN": 0.3}).settings(InferenceSettings())
    with pytest.raises(ValueError, match=r"label_thresholds.RN must be in \(0, 1\), got 0.0"):
        InferenceOptions(label_thresholds={"RN": 0.0})
