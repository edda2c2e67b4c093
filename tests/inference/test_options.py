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
