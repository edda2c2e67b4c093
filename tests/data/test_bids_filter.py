"""Which file each channel is: other entities read, a filter's choice, ambiguity named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sn_platform.data.bids import (
    DataValidationError,
    chimap_path,
    discover_subjects,
    echo_path,
    find_channel,
    load_volume,
    missing_channel_problem,
    missing_channels,
)
from sn_platform.data.bids_filter import BidsFilter, parse_bids_name
from tests.data.test_bids import _save, _tiny_dataset


def _rename(path: Path, name: str) -> Path:
    return path.rename(path.with_name(name))


def _copy(path: Path, name: str, value: float) -> Path:
    data, _ = load_volume(path)
    return _save(path.with_name(name), np.full(data.shape, value, np.float32))


def test_files_with_other_entities_are_read_and_the_canonical_name_wins(tmp_path):
    root = _tiny_dataset(tmp_path)
    _rename(echo_path(root, "01", 2), "sub-01_acq-fast_echo-2_part-mag_MEGRE.nii.gz")
    _rename(chimap_path(root, "01"), "sub-01_rec-star_run-2_Chimap.nii")
    _copy(echo_path(root, "01", 3), "sub-01_run-2_echo-3_part-mag_MEGRE.nii.gz", 7.0)
    _copy(echo_path(root, "01", 1), "sub-01_echo-1_part-phase_MEGRE.nii.gz", 3.0)
    _copy(echo_path(root, "01", 1), "sub-1_echo-1_part-mag_MEGRE.nii.gz", 5.0)  # not sub-01
    record = discover_subjects(root, subjects=["01"])[0]
    assert [path.name for path in record.channels.values()] == [
        "sub-01_echo-1_part-mag_MEGRE.nii.gz",  # not the phase, not another subject's
        "sub-01_acq-fast_echo-2_part-mag_MEGRE.nii.gz",
        "sub-01_echo-3_part-mag_MEGRE.nii.gz",  # the canonical name before run-2
    ]
    assert record.chimap is not None and record.chimap.name == "sub-01_rec-star_run-2_Chimap.nii"


def test_files_alike_are_named_and_a_filter_chooses(tmp_path):
    root = _tiny_dataset(tmp_path)
    for number in (1, 2, 3):
        name = f"sub-01_run-01_echo-{number}_part-mag_MEGRE.nii.gz"
        echo = _rename(echo_path(root, "01", number), name)
        _copy(echo, f"sub-01_run-02_echo-{number}_part-mag_MEGRE.nii.gz", 10.0 * number)
    with pytest.raises(DataValidationError) as info:
        discover_subjects(root, subjects=["01"])
    assert str(info.value) == (
        f"{root / 'sub-01' / 'anat'}: 2 files are channel echo-1, the magnitude of MEGRE "
        "echo 1 (sub-01_run-01_echo-1_part-mag_MEGRE.nii.gz, "
        "sub-01_run-02_echo-1_part-mag_MEGRE.nii.gz): choose one with a bids_filter, "
        "e.g. {MEGRE: {run: 01}}"
    )
    assert missing_channels(root, "01", ["echo-1", "echo-2"]) == []  # ambiguous, not missing
    chosen = BidsFilter({"MEGRE": {"run": 2}})  # as Hydra reads run: 2; the files say 02
    record = discover_subjects(root, subjects=["01"], bids_filter=chosen)[0]
    for number, path in enumerate(record.channels.values(), start=1):
        assert path.name == f"sub-01_run-02_echo-{number}_part-mag_MEGRE.nii.gz"
        assert float(load_volume(path)[0].mean()) == 10.0 * number
    one_echo = BidsFilter({"MEGRE": {"run": 1}, "echo-3": {"run": 2}})  # the channel's last
    assert find_channel(root, "01", "echo-3", one_echo).name.startswith("sub-01_run-02_")
    assert find_channel(root, "01", "echo-2", one_echo).name.startswith("sub-01_run-01_")


def test_an_nm_image_under_a_labs_own_acq_label_is_read_through_the_filter(tmp_path):
    root = _tiny_dataset(tmp_path)
    _copy(echo_path(root, "01", 1), "sub-01_acq-neuromelanin_T1w.nii.gz", 2.0)
    _copy(echo_path(root, "01", 1), "sub-01_T1w.nii.gz", 4.0)  # a T1w is not an NM image
    assert find_channel(root, "01", "NM") is None
    assert missing_channel_problem(root, "01", "NM") == (
        "sub-01_T1w.nii.gz has no acq where acq-NM is read"
    )
    nm = find_channel(root, "01", "NM", BidsFilter({"NM": {"acq": "neuromelanin"}}))
    assert nm is not None and nm.name == "sub-01_acq-neuromelanin_T1w.nii.gz"


def test_a_file_the_filter_leaves_out_is_named_with_the_filter_that_reads_it(tmp_path):
    root = _tiny_dataset(tmp_path)
    _rename(chimap_path(root, "02"), "sub-02_rec-star_Chimap.nii.gz")
    _rename(echo_path(root, "02", 2), "sub-02_echo-2_part-phase_MEGRE.nii.gz")
    no_rec = BidsFilter({"Chimap": {"rec": None}})
    assert find_channel(root, "02", "Chimap", no_rec) is None
    assert missing_channel_problem(root, "02", "Chimap", no_rec) == (
        "sub-02_rec-star_Chimap.nii.gz has rec-star where no rec is read; "
        "bids_filter={Chimap: {rec: star}} reads it"
    )
    with pytest.raises(DataValidationError) as info:
        discover_subjects(root, subjects=["02"])
    assert str(info.value) == (
        f"{echo_path(root, '02', 2)}: missing channel echo-2, the magnitude of MEGRE echo 2, "
        "of the channels read ['echo-1', 'echo-2', 'echo-3']; "
        "sub-02_echo-2_part-phase_MEGRE.nii.gz has part-phase where part-mag is read"
    )


@pytest.mark.parametrize(
    ("queries", "problem"),
    [
        ({"echo1": {"run": 1}}, "unknown channel 'echo1'"),
        ({"MEGRE": {"echo": 2}}, "entity 'echo' cannot be chosen"),
        ({"NM": {"acq": "neuro-melanin"}}, "acq='neuro-melanin' is no BIDS label"),
        ({"Chimap": "rec-star"}, "an entity -> value map"),
    ],
)
def test_a_malformed_filter_is_refused_naming_its_entry(queries, problem):
    with pytest.raises(ValueError, match="bids_filter: ") as info:
        BidsFilter(queries)
    assert problem in str(info.value)


def test_bids_names_are_split_and_other_names_are_not():
    name = parse_bids_name("sub-01_ses-pre_echo-1_part-mag_MEGRE.nii.gz")
    assert name is not None
    assert (name.entities, name.suffix, name.stem, name.extension) == (
        {"sub": "01", "ses": "pre", "echo": "1", "part": "mag"},
        "MEGRE",
        "sub-01_ses-pre_echo-1_part-mag_MEGRE",
        ".nii.gz",
    )
    others = ("sub-01.nii.gz", "sub-01_echo1_MEGRE.nii", "sub-01_sub-02_T1w.nii", "sub-_T1w.nii")
    assert [parse_bids_name(other) for other in others] == [None] * 4
