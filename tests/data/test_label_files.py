"""Which mask is a scan's label: masks with other entities read where they fit the image
series read, other spaces never, ambiguity and near misses named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sn_platform.data.bids import (
    DataValidationError,
    discover_subjects,
    echo_path,
    label_path,
    load_volume,
    with_labels_from,
)
from sn_platform.data.bids_filter import BidsFilter, parse_bids_name
from sn_platform.data.label_files import label_conflict, series_entities
from tests.data.test_bids import _save, _tiny_dataset
from tests.data.test_bids_filter import _rename


def _drawn(path, value: int = 1):
    """A copy of ``path``'s mask with its first drawn voxel moved (a mask told apart)."""
    mask, _ = load_volume(path, "label")
    mask = mask.astype(np.uint8)
    mask[0, 0, 0] = value
    return mask


def _label_dir(root, scan: str = "01"):
    return label_path(root, "manual", scan, "SN").parent


def _runs(root, scan: str = "01") -> None:
    """Scan ``scan``'s echoes as ``run-1`` and ``run-2`` of ``acq-gre``."""
    for number in (1, 2, 3):
        echo = echo_path(root, scan, number)
        data, _ = load_volume(echo)
        _save(echo.with_name(f"sub-{scan}_acq-gre_run-2_echo-{number}_part-mag_MEGRE.nii.gz"), data)
        _rename(echo, f"sub-{scan}_acq-gre_run-1_echo-{number}_part-mag_MEGRE.nii.gz")


def test_a_label_drawn_on_the_series_read_is_read_before_the_plain_one(tmp_path):
    root = _tiny_dataset(tmp_path)
    _runs(root)
    plain = label_path(root, "manual", "01", "SN")
    _save(plain.with_name("sub-01_acq-gre_run-02_label-SN_mask.nii"), _drawn(plain))
    _save(plain.with_name("sub-01_acq-gre_run-1_label-SN_desc-rater1_mask.nii.gz"), _drawn(plain))
    expected = {
        2: "sub-01_acq-gre_run-02_label-SN_mask.nii",
        1: "sub-01_acq-gre_run-1_label-SN_desc-rater1_mask.nii.gz",
    }
    for run, name in expected.items():
        bids_filter = BidsFilter({"MEGRE": {"run": run}})
        (record,) = discover_subjects(root, subjects=["01"], bids_filter=bids_filter)
        assert record.labels["SN"].name == name
    # A label without series entities fits any series; another subject's mask never.
    _save(_label_dir(root, "02") / "sub-01_label-RN_mask.nii.gz", _drawn(plain))
    _runs(root, "02")
    bids_filter = BidsFilter({"MEGRE": {"run": 1}})
    (record,) = discover_subjects(root, subjects=["02"], bids_filter=bids_filter)
    assert record.labels == {"SN": label_path(root, "manual", "02", "SN")}


def test_a_label_in_another_space_or_of_another_run_is_a_missing_label_naming_why(tmp_path):
    root = _tiny_dataset(tmp_path)
    _runs(root)
    plain = label_path(root, "manual", "01", "SN")
    mni = _rename(plain, "sub-01_space-MNI152NLin2009cAsym_label-SN_mask.nii.gz")
    _save(plain.with_name("sub-01_acq-gre_run-2_label-SN_mask.nii.gz"), _drawn(mni))
    with pytest.raises(DataValidationError) as info:
        discover_subjects(root, subjects=["01"], bids_filter=BidsFilter({"MEGRE": {"run": 1}}))
    assert str(info.value) == (
        f"{plain}: missing SN label; sub-01_acq-gre_run-2_label-SN_mask.nii.gz is drawn on "
        "run-2 where run-1 is read; sub-01_space-MNI152NLin2009cAsym_label-SN_mask.nii.gz "
        "is on another grid (space-MNI152NLin2009cAsym) than the image read"
    )
    # The scan's own space is its grid.
    _save(plain.with_name("sub-01_space-orig_label-SN_mask.nii.gz"), _drawn(mni, 0))
    (record,) = discover_subjects(
        root, subjects=["01"], bids_filter=BidsFilter({"MEGRE": {"run": 1}})
    )
    assert record.labels["SN"].name == "sub-01_space-orig_label-SN_mask.nii.gz"


def test_masks_alike_are_named_and_the_plain_one_wins_over_a_described_one(tmp_path):
    root = _tiny_dataset(tmp_path)
    plain = label_path(root, "manual", "01", "SN")
    _save(plain.with_name("sub-01_label-SN_desc-eroded_mask.nii.gz"), _drawn(plain))
    (record, _) = discover_subjects(root)
    assert record.labels["SN"] == plain
    _rename(plain, "sub-01_label-SN_desc-rater1_mask.nii.gz")
    with pytest.raises(DataValidationError) as info:
        discover_subjects(root)
    assert str(info.value) == (
        f"{plain.parent}: 2 files are the SN label (sub-01_label-SN_desc-eroded_mask.nii.gz, "
        "sub-01_label-SN_desc-rater1_mask.nii.gz): keep one, or move the others to a "
        "derivatives folder of their own (data.label_source; sn-infer: label_source)"
    )


def test_a_teachers_masks_fill_labels_of_the_series_read(tmp_path):
    root = _tiny_dataset(tmp_path)
    _runs(root)
    (record,) = discover_subjects(
        root, subjects=["01"], bids_filter=BidsFilter({"MEGRE": {"run": 2}})
    )
    teacher = label_path(root, "teacher", "01", "RN")
    _save(
        teacher.with_name("sub-01_acq-gre_run-1_label-RN_mask.nii.gz"), _drawn(record.labels["SN"])
    )
    assert with_labels_from(record, root, "teacher", ["RN"]) == record  # drawn on run 1
    _save(
        teacher.with_name("sub-01_acq-gre_run-2_label-RN_mask.nii.gz"), _drawn(record.labels["SN"])
    )
    filled = with_labels_from(record, root, "teacher", ["SN", "RN"])
    assert filled.labels == {
        "SN": record.labels["SN"],  # its own label kept
        "RN": teacher.with_name("sub-01_acq-gre_run-2_label-RN_mask.nii.gz"),
    }


@pytest.mark.parametrize(
    ("image", "mask", "conflict"),
    [
        ("sub-01_echo-1_MEGRE.nii.gz", "sub-01_label-SN_mask.nii.gz", ""),
        ("sub-01_echo-1_MEGRE.nii.gz", "sub-01_space-scanner_label-SN_mask.nii", ""),
        ("sub-01_run-01_echo-1_MEGRE.nii", "sub-01_run-1_label-SN_desc-x_mask.nii.gz", ""),
        ("sub-01_space-MNI_echo-1_MEGRE.nii.gz", "sub-01_space-MNI_label-SN_mask.nii.gz", ""),
        (
            "sub-01_echo-1_MEGRE.nii.gz",
            "sub-01_label-SN_hemi-L_mask.nii.gz",
            "is of one hemisphere (hemi-L), where a label of both sides is read",
        ),
        (
            "sub-01_space-MNI_echo-1_MEGRE.nii.gz",
            "sub-01_space-orig_label-SN_mask.nii.gz",
            "is on another grid (space-orig) than the image read",
        ),
        (
            "sub-01_echo-1_MEGRE.nii.gz",
            "sub-01_res-2_label-SN_mask.nii.gz",
            "is on another grid (res-2) than the image read",
        ),
        (
            "sub-01_chunk-1_echo-1_MEGRE.nii.gz",
            "sub-01_chunk-2_label-SN_mask.nii.gz",
            "is drawn on chunk-2 where chunk-1 is read",
        ),
        (
            "sub-01_echo-1_MEGRE.nii.gz",
            "sub-01_acq-nm_label-SN_mask.nii.gz",
            "is drawn on acq-nm where no acq is read",
        ),
        (
            "sub-01_echo-1_MEGRE.nii.gz",
            "sub-01_desc-SN_mask.nii.gz",
            "names its structure by desc-SN, where label-SN is read",
        ),
    ],
)
def test_a_mask_fits_the_image_series_and_grid_or_says_why_not(image, mask, conflict):
    name = parse_bids_name(mask)
    assert name is not None
    assert label_conflict(name, series_entities(Path(image))) == conflict


def test_a_label_is_found_whatever_its_case_and_a_desc_named_mask_is_named(tmp_path):
    root = _tiny_dataset(tmp_path)
    plain = label_path(root, "manual", "01", "SN")
    lower = _rename(plain, "sub-01_label-sn_mask.nii.gz")
    (record, _) = discover_subjects(root)
    assert record.labels["SN"] == lower
    _rename(lower, "sub-01_desc-SN_mask.nii.gz")
    with pytest.raises(DataValidationError) as info:
        discover_subjects(root)
    assert str(info.value) == (
        f"{plain}: missing SN label; sub-01_desc-SN_mask.nii.gz names its structure by "
        "desc-SN, where label-SN is read"
    )
