"""The subjects of a run with partial labels: any drawn label makes a training subject,
none is refused in one line naming the subject's label folder."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from sn_platform.data.bids import DataValidationError
from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.data.settings import DataSettings, SplitSettings
from sn_platform.training.subjects import split_subjects

LABELS = ("SN", "RN", "CC")


def _partial_copy(source: Path, target: Path, keep: dict[str, tuple[str, ...]]) -> Path:
    """``source`` with every subject linked and each listed subject's manual labels
    reduced to ``keep[id]``."""
    shutil.copytree(source, target, symlinks=True, ignore=shutil.ignore_patterns("truth"))
    for participant_id, labels in keep.items():
        folder = target / "derivatives" / "manual" / f"sub-{participant_id}" / "anat"
        for path in folder.glob("*_mask.nii.gz"):
            if path.name.split("_label-")[1].split("_")[0] not in labels:
                path.unlink()
    return target


def _settings(root: Path, partial: bool) -> DataSettings:
    splits = SplitSettings(file=str(root / "splits.json"), folds=2, test_fraction=0.0)
    return DataSettings(str(root), PreprocessingSpec(), splits, labels=LABELS,
                        partial_labels=partial)  # fmt: skip


def test_an_sn_only_subject_trains_with_partial_labels_and_is_refused_without(
    phantom_cohort, tmp_path
):
    root = _partial_copy(phantom_cohort[0], tmp_path / "partial", {"002": ("SN",)})
    subjects = split_subjects(_settings(root, partial=True), fold=None)
    by_id = {r.participant_id: sorted(r.labels) for r in subjects.all}
    assert by_id["002"] == ["SN"] and by_id["001"] == sorted(LABELS)
    with pytest.raises(
        DataValidationError, match=re.escape("sub-002_label-RN_mask.nii.gz: missing RN")
    ):
        split_subjects(_settings(root, partial=False), fold=None)


def test_a_subject_with_no_label_at_all_is_refused(phantom_cohort, tmp_path):
    root = _partial_copy(phantom_cohort[0], tmp_path / "none", {"003": ()})
    with pytest.raises(DataValidationError, match=re.escape("sub-003/anat: none of the labels")):
        split_subjects(_settings(root, partial=True), fold=None)
