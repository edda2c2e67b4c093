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
    for number in (1, 2, 3):
        _rename(echo_path(root, "02", number), f"sub-02_acq-fast_echo-{number}_MEGRE.nii.gz")
    _rename(chimap_path(root, "01"), "sub-01_rec-star_run-2_Chimap.nii")
    _copy(echo_path(root, "01", 3), "sub-01_run-2_echo-3_part-mag_MEGRE.nii.gz", 7.0)
    _copy(echo_path(root, "01", 1), "sub-01_echo-1_part-phase_MEGRE.nii.gz", 3.0)
    _copy(echo_path(root, "01", 1), "sub-1_echo-1_part-mag_MEGRE.nii.gz", 5.0)  # not sub-01
    first, second = discover_subjects(root)
    assert [path.name for path in first.channels.values()] == [
        "sub-01_echo-1_part-mag_MEGRE.nii.gz",  # not the phase, not another subject's
        "sub-01_echo-2_part-mag_MEGRE.nii.gz",
        "sub-01_echo-3_part-mag_MEGRE.nii.gz",  # the canonical name before run-2
    ]
    assert first.chimap is not None and first.chimap.name == "sub-01_rec-star_run-2_Chimap.nii"
    names = [path.name for path in second.channels.values()]
    assert names == [f"sub-02_acq-fast_echo-{n}_MEGRE.nii.gz" for n in (1, 2, 3)]


def test_the_echoes_of_a_scan_are_one_series(tmp_path):
    root = _tiny_dataset(tmp_path)
    _rename(echo_path(root, "01", 3), "sub-01_acq-fast_echo-3_part-mag_MEGRE.nii.gz")
    with pytest.raises(DataValidationError) as info:
        discover_subjects(root, subjects=["01"])
    assert str(info.value) == (
        f"{root / 'sub-01' / 'anat'}: sub-01_echo-1_part-mag_MEGRE.nii.gz and "
        "sub-01_acq-fast_echo-3_part-mag_MEGRE.nii.gz are echoes of two series (their "
        "entities differ); choose one series with data.bids_filter (sn-infer: bids_filter)"
    )


def test_files_alike_are_named_and_a_filter_chooses(tmp_path):
    root = _tiny_dataset(tmp_path)
    for number in (1, 2, 3):
        name = f"sub-01_run-01_echo-{number}_part-mag_MEGRE.nii.gz"
        echo = _rename(echo_path(root, "01", number), name)
        _copy(echo, f"sub-01_run-02_echo-{number}_part-mag_MEGRE.nii.gz", 10.0 * number)
    with pytest.raises(DataValidationError) as info:
        discover_subjects(root, subjects=["01"])
    assert str(info.value) == (
        f"{root / 'sub-01' / 'anat'}: 2 files are channel echo-1 "
        "(sub-01_run-01_echo-1_part-mag_MEGRE.nii.gz, "
        "sub-01_run-02_echo-1_part-mag_MEGRE.nii.gz): choose one with data.bids_filter "
        "(sn-infer: bids_filter), "
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
    _copy(echo_path(root, "01", 1), "sub-01_acq-NM_part-phase_T1w.nii.gz", 6.0)  # nor a phase
    assert find_channel(root, "01", "NM") is None
    assert missing_channel_problem(root, "01", "NM") == (
        "sub-01_T1w.nii.gz, sub-01_acq-neuromelanin_T1w.nii.gz (acq-neuromelanin) are T1w "
        "where acq-NM is read; data.bids_filter (sn-infer: bids_filter) "
        "{NM: {acq: neuromelanin}} reads it"
    )
    nm = find_channel(root, "01", "NM", BidsFilter({"NM": {"acq": "neuromelanin"}}))
    assert nm is not None and nm.name == "sub-01_acq-neuromelanin_T1w.nii.gz"
    _copy(echo_path(root, "01", 1), "sub-01_acq-MPRAGE_T1w.nii.gz", 8.0)  # which is NM? unsaid
    assert missing_channel_problem(root, "01", "NM").endswith(
        "{NM: {acq: LABEL}} reads the one with acq-LABEL"
    )


def test_a_file_the_filter_leaves_out_is_named_with_the_filter_that_reads_it(tmp_path):
    root = _tiny_dataset(tmp_path)
    _rename(chimap_path(root, "02"), "sub-02_rec-star_Chimap.nii.gz")
    _rename(echo_path(root, "02", 2), "sub-02_echo-2_part-phase_MEGRE.nii.gz")
    no_rec = BidsFilter({"Chimap": {"rec": None}})
    assert find_channel(root, "02", "Chimap", no_rec) is None
    assert missing_channel_problem(root, "02", "Chimap", no_rec) == (
        "sub-02_rec-star_Chimap.nii.gz (rec-star) is Chimap where no rec is read; "
        "data.bids_filter (sn-infer: bids_filter) {Chimap: {rec: star}} reads it"
    )
    with pytest.raises(DataValidationError) as info:
        discover_subjects(root, subjects=["02"])
    assert str(info.value) == (
        f"{echo_path(root, '02', 2)}: missing channel echo-2, the magnitude of MEGRE echo 2, "
        "of the channels read ['echo-1', 'echo-2', 'echo-3']; "
        "sub-02_echo-2_part-phase_MEGRE.nii.gz (part-phase) is MEGRE where part-mag is read"
    )


@pytest.mark.parametrize(
    ("queries", "problem"),
    [
        ({"echo1": {"run": 1}}, "unknown channel 'echo1'"),
        ({"MEGRE": {"echo": 2}}, "entity 'echo' cannot be chosen"),
        ({"NM": {"acq": "neuro-melanin"}}, "acq='neuro-melanin' is no BIDS label"),
        ({"Chimap": "rec-star"}, "an entity -> value map"),
        ({"MEGRE": {"part": "phase"}}, "part-phase is no magnitude"),
        (3, "a map channel -> entity -> value, e.g. {MEGRE: {run: 2}}, got 3"),
        (False, "got False"),
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


def test_one_series_spelt_two_ways_is_one_series_and_two_files_of_one_run_are_named(tmp_path):
    root = _tiny_dataset(tmp_path)
    for number in (1, 2, 3):  # part-mag beside part-less of one acquisition: part-mag read
        echo = _rename(echo_path(root, "01", number), f"sub-01_acq-X_echo-{number}_MEGRE.nii.gz")
        _copy(echo, f"sub-01_acq-X_echo-{number}_part-mag_MEGRE.nii.gz", float(number))
    names = [path.name for path in discover_subjects(root, subjects=["01"])[0].channels.values()]
    assert names == [f"sub-01_acq-X_echo-{n}_part-mag_MEGRE.nii.gz" for n in (1, 2, 3)]
    _rename(echo_path(root, "02", 1), "sub-02_run-01_echo-1_part-mag_MEGRE.nii.gz")
    for number in (2, 3):  # run-1 and run-01 are one run: one series
        _rename(echo_path(root, "02", number), f"sub-02_run-1_echo-{number}_part-mag_MEGRE.nii.gz")
    assert len(discover_subjects(root, subjects=["02"])[0].channels) == 3
    _copy(  # two files of run 1 of echo 2: which is it?
        echo_path(root, "02", 1).with_name("sub-02_run-01_echo-1_part-mag_MEGRE.nii.gz"),
        "sub-02_run-01_echo-2_part-mag_MEGRE.nii.gz",
        9.0,
    )
    with pytest.raises(DataValidationError, match="no entity a filter chooses tells them apart"):
        discover_subjects(root, subjects=["02"])
