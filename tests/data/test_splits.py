"""Subject-level stratified folds, saved and reused."""

from __future__ import annotations

import pytest

from sn_platform.data.splits import load_or_create_splits, stratified_splits
from sn_platform.errors import ConfigError

GROUPS = {f"{i:03d}": ("PD" if i % 3 == 0 else "HC") for i in range(1, 31)}


def test_folds_are_disjoint_cover_and_stratified():
    splits = stratified_splits(GROUPS, k=5, seed=0, test_fraction=0.2)
    assert len(splits.test) == 6
    assert sum(GROUPS[s] == "PD" for s in splits.test) == 2
    validations = [set(splits.fold(i)[1]) for i in range(5)]
    assert set().union(*validations) == set(splits.development)
    assert sum(len(v) for v in validations) == 24
    assert not set(splits.test) & set(splits.development)
    for i in range(5):
        train, val = splits.fold(i)
        assert not set(train) & set(val) and len(val) in (4, 5)
        assert sum(GROUPS[s] == "PD" for s in val) in (1, 2)
    with pytest.raises(ValueError, match="fold 5 does not exist"):
        splits.fold(5)


def test_same_seed_same_splits_other_seed_other_splits():
    assert stratified_splits(GROUPS, 5, seed=1) == stratified_splits(GROUPS, 5, seed=1)
    assert stratified_splits(GROUPS, 5, seed=1) != stratified_splits(GROUPS, 5, seed=2)


def test_saved_splits_are_reused_and_checked(tmp_path):
    path = tmp_path / "splits_final.json"
    first = load_or_create_splits(path, GROUPS, k=5, seed=0, test_fraction=0.2)
    assert load_or_create_splits(path, GROUPS, k=5, seed=99, test_fraction=0.5) == first
    with pytest.raises(ValueError, match="delete the file to re-split"):
        load_or_create_splits(path, {**GROUPS, "031": "HC"}, k=5)


def test_splits_saved_in_a_bids_dataset_are_listed_in_its_bidsignore(tmp_path):
    (tmp_path / "dataset_description.json").write_text("{}")
    (tmp_path / ".bidsignore").write_text("extra/\n")
    load_or_create_splits(tmp_path / "splits_final.json", GROUPS, k=5)
    load_or_create_splits(tmp_path / "splits_smoke.json", GROUPS, k=2)
    load_or_create_splits(tmp_path / "splits_smoke.json", GROUPS, k=2)  # reused: once
    assert (
        tmp_path / ".bidsignore"
    ).read_text() == "extra/\nsplits_final.json\nsplits_smoke.json\n"
    elsewhere = tmp_path / "not-bids"
    elsewhere.mkdir()
    load_or_create_splits(elsewhere / "splits_final.json", GROUPS, k=5)
    assert not (elsewhere / ".bidsignore").exists()


def test_too_few_subjects_for_the_folds_says_what_fixes_it():
    groups = {f"{i:03d}": ("HC", "PD")[i % 2] for i in range(6)}
    with pytest.raises(ConfigError) as refused:
        stratified_splits(groups, k=5, test_fraction=0.2)
    assert str(refused.value) == (
        "data.splits.folds: 5 folds need 5 development subjects, but the test split "
        "(test_fraction 0.2) takes 2 of the 6 subjects and leaves 4; give "
        "data.splits.folds=4 or data.splits.test_fraction=0.0"
    )
