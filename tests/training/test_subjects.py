"""The subjects of a run with partial labels: any drawn label makes a training subject,
none is refused in one line naming the subject's label folder; a teacher's masks fill the
labels training subjects lack, never those of the subjects a run is scored on."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nibabel as nib
import pytest

from sn_platform.data.bids import DataValidationError, label_path
from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.data.settings import DataSettings, SplitSettings
from sn_platform.errors import ConfigError
from sn_platform.training.calibration import calibration_records, out_of_fold_records
from sn_platform.training.subjects import split_subjects, training_label_counts
from tests.data.sessions import into_sessions

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


def _settings(
    root: Path, partial: bool, test_fraction: float = 0.0, pseudo: str | None = None
) -> DataSettings:
    splits = SplitSettings(file=str(root / "splits.json"), folds=2, test_fraction=test_fraction)
    return DataSettings(str(root), PreprocessingSpec(), splits, labels=LABELS,
                        partial_labels=partial, pseudo_label_source=pseudo)  # fmt: skip


def _teacher_copy(source: Path, root: Path, ids: list[str]) -> None:
    """``derivatives/teacher`` of ``root``: every label of ``source``'s manual folder for
    ``ids``, as a teacher model's sn-infer output would hold them."""
    for participant_id in ids:
        for name in LABELS:
            target = label_path(root, "teacher", participant_id, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(label_path(source, "manual", participant_id, name), target)


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
    # A mask drawn on another run is named, with why it is not read.
    drawn = label_path(phantom_cohort[0], "manual", "003", "RN")
    shutil.copy(drawn, label_path(root, "manual", "003", "RN").with_name(
        "sub-003_run-2_label-RN_mask.nii.gz"))  # fmt: skip
    with pytest.raises(DataValidationError) as info:
        split_subjects(_settings(root, partial=True), fold=None)
    assert str(info.value).endswith(
        "sub-003/anat: none of the labels ['SN', 'RN', 'CC']; sub-003_run-2_label-RN_mask.nii.gz "
        "is drawn on run-2 where no run is read"
    )


def test_a_teachers_masks_fill_the_labels_training_subjects_lack_and_no_others(
    phantom_cohort, tmp_path
):
    source = phantom_cohort[0]
    ids = ["001", "002", "003", "004"]
    root = _partial_copy(source, tmp_path / "taught", {i: ("SN",) for i in ids})
    _teacher_copy(source, root, ids)
    subjects = split_subjects(_settings(root, True, 0.5, "teacher"), fold=None)
    assert len(subjects.train) == 2 and len(subjects.test) == 2
    for record in subjects.train:
        sources = {name: path.parts[-4] for name, path in record.labels.items()}
        assert sources == {"SN": "manual", "RN": "teacher", "CC": "teacher"}
    for record in subjects.test:  # scored on the manual labels alone
        assert sorted(record.labels) == ["SN"]
    counts = training_label_counts(subjects.train, LABELS, "teacher")
    assert counts == "SN 2, RN 2 (2 pseudo), CC 2 (2 pseudo)"
    assert training_label_counts(subjects.test, LABELS, "teacher") == "SN 2, RN 0, CC 0"
    # Without validation subjects thresholds are chosen on the training subjects' drawn SN.
    assert [sorted(r.labels) for r in calibration_records(subjects, "teacher")] == [["SN"]] * 2
    with_validation = split_subjects(_settings(root, True, 0.5, "teacher"), fold=0)
    assert calibration_records(with_validation, "teacher") == with_validation.validation
    # A fold ensemble's members: each fold's validation subjects, manual labels alone.
    folds = [split_subjects(_settings(root, True, 0.5, "teacher"), fold=k) for k in (0, 1)]
    expected = [split.validation for split in folds]
    assert out_of_fold_records(subjects, [0, 1], "teacher") == expected
    assert [sorted(r.labels) for split in expected for r in split] == [["SN"]] * 2


def test_a_teacher_mask_on_another_grid_is_refused_naming_it(phantom_cohort, tmp_path):
    source = phantom_cohort[0]
    root = _partial_copy(source, tmp_path / "taught", {"001": ("SN",), "002": ("SN",)})
    _teacher_copy(source, root, ["001", "002"])
    subjects = split_subjects(_settings(root, True), fold=None)  # no teacher: SN only
    assert sorted(subjects.all[0].labels) == ["SN"]
    bad = label_path(root, "teacher", "002", "RN")
    image = nib.load(bad)
    nib.save(nib.Nifti1Image(image.get_fdata()[:-2], image.affine), bad)
    with pytest.raises(DataValidationError, match=re.escape(str(bad))):
        split_subjects(_settings(root, True, pseudo="teacher"), fold=None)


@pytest.mark.parametrize(
    ("partial", "pseudo", "message"),
    [
        (False, "teacher", "set data.partial_labels=true"),
        (True, "manual", "pseudo_label_source and label_source are both 'manual'"),
        (True, "../teacher", "must be a single folder name"),
    ],
)
def test_a_teacher_folder_that_cannot_fill_partial_labels_is_refused(
    tmp_path, partial, pseudo, message
):
    with pytest.raises((ValueError, ConfigError), match=re.escape(message)):
        _settings(tmp_path, partial, pseudo=pseudo)


def test_a_participants_sessions_stay_together_in_every_split(phantom_cohort, tmp_path):
    root = tmp_path / "longitudinal"
    shutil.copytree(phantom_cohort[0], root)
    for participant_id in ("001", "004"):
        into_sessions(root, participant_id, ("1", "2"))
    settings = _settings(root, partial=False, test_fraction=0.25)
    expected = ["001_ses-1", "001_ses-2", "002", "003", "004_ses-1", "004_ses-2"]
    for fold in (0, 1):
        subjects = split_subjects(settings, fold=fold)
        parts = [
            [r.scan for r in part] for part in (subjects.train, subjects.validation, subjects.test)
        ]
        assert sorted(scan for part in parts for scan in part) == expected  # each in one part
        for participant_id in ("001", "004"):
            sessions = [
                [scan for scan in part if scan.startswith(participant_id)] for part in parts
            ]
            assert sorted(map(len, sessions)) == [0, 0, 2], sessions
    development = sorted(r.scan for r in [*subjects.train, *subjects.validation])
    folds = out_of_fold_records(subjects, [0, 1], None)
    assert sorted(r.scan for records in folds for r in records) == development
