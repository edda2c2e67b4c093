"""The phantom is a valid BIDS dataset, its raters' and truth folders valid derivatives."""

from __future__ import annotations


def test_the_official_validator_finds_no_error_in_the_phantom(phantom_cohort, bids_errors):
    root, _ = phantom_cohort
    for dataset in (root, *sorted((root / "derivatives").iterdir())):
        assert bids_errors(dataset) == [], dataset.name
