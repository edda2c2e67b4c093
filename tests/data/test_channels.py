"""Declared input channels: their BIDS files, the NM-weighted one, discovery and refusal."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from sn_platform.data.bids import DataValidationError, channel_path, discover_subjects
from sn_platform.data.channels import (
    channel_filename,
    channel_key,
    check_channels,
    echo_channel,
    key_echo_number,
    nm_channel,
)
from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.inference.batch import check_channels_present


def _write(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.ones((4, 4, 3), np.float32), np.eye(4)), path)
    return path


def test_each_channel_is_one_bids_file():
    assert channel_filename("01", "echo-2") == "sub-01_echo-2_part-mag_MEGRE.nii.gz"
    assert channel_filename("01", "NM") == "sub-01_acq-NM_T1w.nii.gz"
    assert channel_filename("01", "Chimap") == "sub-01_Chimap.nii.gz"


@pytest.mark.parametrize(
    ("names", "expected"),
    [(["echo-1", "echo-2"], "echo-1"), (["echo-2", "NM"], "NM"), (["Chimap"], None),
     (["echo-2", "Chimap"], None)],
)  # fmt: skip
def test_the_nm_ratio_is_taken_on_nm_else_echo_1_else_nowhere(names, expected):
    assert nm_channel(names) == expected


@pytest.mark.parametrize(
    ("names", "problem"),
    [(["T2w"], "unknown channel 'T2w'"), (["echo-0"], "unknown channel 'echo-0'"),
     (["NM", "NM"], "each channel once"), ([], "at least one")],
)  # fmt: skip
def test_unknown_or_repeated_channels_are_refused(names, problem):
    with pytest.raises(ValueError, match=problem):
        check_channels(names)


def test_an_echo_key_gives_back_its_echo_number_and_no_other_key_does():
    assert [key_echo_number(channel_key(echo_channel(n))) for n in (1, 2, 3, 12)] == [1, 2, 3, 12]
    for key in ("NM", "Chimap", "echo", "echo0", "echo-1", "echoes"):
        assert key_echo_number(key) is None


def test_a_spec_saved_with_echo_numbers_reads_as_megre_channels():
    legacy = {**PreprocessingSpec().to_dict(), "echoes": [1, 2]}
    del legacy["channels"]
    assert PreprocessingSpec.from_dict(legacy).channels == ("echo-1", "echo-2")
    assert PreprocessingSpec(channels=("NM", "Chimap")).channel_keys == ["NM", "Chimap"]


def test_a_qsm_only_record_measures_chi_and_registers_to_the_subject_s_magnitude(tmp_path):
    chimap = _write(channel_path(tmp_path, "01", "Chimap"))
    echo1 = _write(channel_path(tmp_path, "01", "echo-1"))
    (record,) = discover_subjects(tmp_path, channels=["Chimap"], label_source=None)
    assert record.channels == {"Chimap": chimap} and record.chimap == chimap
    assert record.nm_image is None  # the model reads no NM-weighted image: NM is n/a
    assert record.anatomical_image == echo1


def test_an_nm_model_refuses_a_multi_echo_dataset_naming_subject_and_channel(tmp_path):
    for participant_id in ("01", "02"):
        for name in ("echo-1", "echo-2", "echo-3", "Chimap"):
            _write(channel_path(tmp_path, participant_id, name))
    with pytest.raises(DataValidationError) as refusal:
        check_channels_present(tmp_path, ["01", "02"], ["NM"])
    message = str(refusal.value)
    assert message.startswith(str(tmp_path / "sub-01/anat/sub-01_acq-NM_T1w.nii.gz"))
    assert "missing channel NM" in message and "none of the 2 subjects has them all" in message
    assert "\n" not in message


def test_a_multi_echo_model_refuses_a_single_echo_nm_dataset(tmp_path):
    _write(channel_path(tmp_path, "01", "NM"))
    multi_echo = ["echo-1", "echo-2", "echo-3"]
    with pytest.raises(DataValidationError, match=r"missing channel echo-1, .*none of the 1 sub"):
        check_channels_present(tmp_path, ["01"], multi_echo)
    check_channels_present(tmp_path, ["01"], ["NM"])  # the NM model's own input: accepted
    # A scan that has them beside: the model fits; the other ends in errors.tsv.
    for name in multi_echo:
        _write(channel_path(tmp_path, "02", name))
    check_channels_present(tmp_path, ["01", "02"], multi_echo)
