"""Discovery and validation reject malformed inputs with a message naming the file."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from sn_platform.data.bids import (
    DataValidationError,
    chimap_path,
    discover_subjects,
    dseg_path,
    echo_path,
    find_scans,
    label_path,
    load_volume,
    scan_columns,
    scan_of_row,
    scans_in_words,
    validate_subject,
)
from tests.data.sessions import into_sessions

SHAPE = (8, 7, 4)
AFFINE = np.diag([0.5, 0.5, 1.0, 1.0])


def _save(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def _tiny_dataset(root: Path, subjects: tuple[str, ...] = ("01", "02")) -> Path:
    rng = np.random.default_rng(0)
    for sub in subjects:
        for n in (1, 2, 3):
            _save(echo_path(root, sub, n), rng.uniform(100, 200, SHAPE).astype(np.int16))
        _save(chimap_path(root, sub), rng.normal(0, 0.01, SHAPE).astype(np.float32))
        label = np.zeros(SHAPE, np.uint8)
        label[2:5, 2:5, 1:3] = 1
        _save(label_path(root, "manual", sub, "SN"), label)
    (root / "participants.tsv").write_text("participant_id\tgroup\nsub-01\tHC\nsub-02\tPD\n")
    return root


def test_discovery_finds_files_and_groups(tmp_path):
    records = discover_subjects(_tiny_dataset(tmp_path))
    assert [r.participant_id for r in records] == ["01", "02"]
    assert [r.group for r in records] == ["HC", "PD"]
    assert records[0].channels["echo-3"].name == "sub-01_echo-3_part-mag_MEGRE.nii.gz"
    assert set(records[0].labels) == {"SN"} and records[0].chimap is not None
    geometry = validate_subject(records[0])
    assert geometry.shape == SHAPE and geometry.voxel_mm == (0.5, 0.5, 1.0)


def _expect_error(root: Path, culprit: Path, problem: str) -> None:
    with pytest.raises(DataValidationError) as info:
        for record in discover_subjects(root):
            validate_subject(record)
    message = str(info.value)
    assert message.startswith(str(culprit)), message
    assert problem in message, message
    assert "\n" not in message


def test_missing_echo(tmp_path):
    root = _tiny_dataset(tmp_path)
    echo_path(root, "02", 2).unlink()
    _expect_error(root, echo_path(root, "02", 2), "missing channel echo-2")


def test_uncompressed_files_and_echoes_without_the_part_entity_are_read(tmp_path):
    root = _tiny_dataset(tmp_path)
    renamed = {
        echo_path(root, "01", 1): "sub-01_echo-1_MEGRE.nii.gz",  # BIDS before 1.5: no part
        echo_path(root, "01", 2): "sub-01_echo-2_part-mag_MEGRE.nii",
        echo_path(root, "01", 3): "sub-01_echo-3_MEGRE.nii",
        chimap_path(root, "01"): "sub-01_Chimap.nii",
        label_path(root, "manual", "01", "SN"): "sub-01_label-SN_mask.nii",
    }
    expected = {}
    for path, name in renamed.items():
        image = nib.load(path)
        expected[name] = np.asarray(image.dataobj)
        nib.save(image, path.with_name(name))  # .nii: uncompressed, as nibabel writes it
        path.unlink()
    record = discover_subjects(root)[0]
    found = [*record.channels.values(), record.chimap, record.labels["SN"]]
    assert [p.name for p in found if p is not None] == list(renamed.values())
    for path in found:
        assert path is not None and np.array_equal(load_volume(path)[0], expected[path.name])
    assert validate_subject(record).shape == SHAPE


def test_missing_label(tmp_path):
    root = _tiny_dataset(tmp_path)
    label_path(root, "manual", "01", "SN").unlink()
    _expect_error(root, label_path(root, "manual", "01", "SN"), "missing SN label")


def test_mismatched_affine(tmp_path):
    root = _tiny_dataset(tmp_path)
    shifted = AFFINE.copy()
    shifted[0, 3] = 0.7
    _save(echo_path(root, "01", 3), np.ones(SHAPE, np.int16), shifted)
    _expect_error(
        root, echo_path(root, "01", 3), "affine differs from the first channel's by 0.7 mm"
    )


def test_mismatched_shape(tmp_path):
    root = _tiny_dataset(tmp_path)
    _save(chimap_path(root, "01"), np.zeros((8, 7, 5), np.float32))
    _expect_error(root, chimap_path(root, "01"), "shape (8, 7, 5) differs")


def test_nan_volume(tmp_path):
    root = _tiny_dataset(tmp_path)
    data = np.ones(SHAPE, np.float32)
    data[1, 1, 1] = np.nan
    data[2, 2, 2] = np.inf
    _save(echo_path(root, "02", 1), data)
    _expect_error(root, echo_path(root, "02", 1), "2 NaN/Inf voxels")


def test_4d_file(tmp_path):
    root = _tiny_dataset(tmp_path)
    _save(echo_path(root, "01", 2), np.ones((*SHAPE, 2), np.int16))
    _expect_error(
        root, echo_path(root, "01", 2), "4D image of shape (8, 7, 4, 2); a 3D volume is expected"
    )


def test_non_binary_label(tmp_path):
    root = _tiny_dataset(tmp_path)
    label = np.zeros(SHAPE, np.uint8)
    label[0, 0, 0] = 2
    _save(label_path(root, "manual", "02", "SN"), label)
    _expect_error(root, label_path(root, "manual", "02", "SN"), "label is not binary (values 0, 2)")


def test_unreadable_file(tmp_path):
    root = _tiny_dataset(tmp_path)
    echo_path(root, "01", 1).write_bytes(b"this is not a NIfTI file")
    _expect_error(root, echo_path(root, "01", 1), "unreadable")


def test_truncated_file(tmp_path):
    root = _tiny_dataset(tmp_path)
    path = echo_path(root, "02", 3)
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) - 100]))
    _expect_error(root, path, "unreadable or truncated data")


def test_complex_data_type(tmp_path):
    root = _tiny_dataset(tmp_path)
    _save(echo_path(root, "01", 2), np.ones(SHAPE, np.complex64))
    _expect_error(root, echo_path(root, "01", 2), "complex data type")


def test_subject_selection_and_unknown_subject(tmp_path):
    root = _tiny_dataset(tmp_path)
    assert [r.participant_id for r in discover_subjects(root, subjects=["sub-02"])] == ["02"]
    with pytest.raises(DataValidationError, match="no folder for subjects 07"):
        discover_subjects(root, subjects=["07"])


@pytest.mark.parametrize("wanted", ["../x", "01/../../etc", "sub-../", "0 1", "é1"])
def test_a_participant_label_cannot_lead_out_of_the_dataset(tmp_path, wanted):
    root = _tiny_dataset(tmp_path)
    with pytest.raises(DataValidationError, match="not a BIDS participant label"):
        discover_subjects(root, subjects=[wanted])


def _header_case(root: Path, case: str) -> Path:
    path = echo_path(root, "01", 1)
    image = nib.load(path)
    header = image.header.copy()
    if case == "qform/sform":
        header.set_qform(np.diag([1.0, 1.0, 1.0, 1.0]), code=1)
    else:
        header["qform_code"] = 0
        rows = np.diag([0.5, 0.0, 1.0, 1.0]) if case == "singular" else np.full((4, 4), np.nan)
        header["srow_x"], header["srow_y"], header["srow_z"] = rows[:3]
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(header.binaryblock + raw[348:]))
    return path


@pytest.mark.parametrize(
    ("case", "problem"),
    [("qform/sform", "qform and sform disagree by 0.5 mm"), ("singular", "affine is singular"),
     ("nan", "affine has NaN/Inf entries")],
)  # fmt: skip
def test_headers_a_reader_would_misread_are_refused(tmp_path, case, problem):
    path = _header_case(_tiny_dataset(tmp_path), case)
    with pytest.raises(DataValidationError, match=problem) as caught:
        load_volume(path)
    assert caught.value.path == path


def test_participants_table_that_is_not_text_is_named(tmp_path):
    root = _tiny_dataset(tmp_path)
    (root / "participants.tsv").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(DataValidationError, match=r"participants\.tsv: not a UTF-8 TSV table"):
        discover_subjects(root)


def test_the_tissue_map_is_found_only_when_asked_and_refused_when_missing(tmp_path):
    root = _tiny_dataset(tmp_path)
    assert [r.tissues for r in discover_subjects(root)] == [None, None]
    with pytest.raises(DataValidationError) as info:
        discover_subjects(root, tissues=True)
    message = str(info.value)
    assert message.startswith(f"{dseg_path(root, '01')}: missing tissue label map (dseg)")
    assert "augment=synth" in message and "\n" not in message
    classes = np.zeros(SHAPE, np.uint8)
    classes[2:5, 2:5, 1:3] = 8
    for sub in ("01", "02"):
        _save(dseg_path(root, sub), classes)
    records = discover_subjects(root, tissues=True)
    assert [r.tissues for r in records] == [dseg_path(root, "01"), dseg_path(root, "02")]
    assert validate_subject(records[0]).shape == SHAPE
    assert [r.tissues for r in discover_subjects(root)] == [None, None]


def test_a_tissue_map_of_other_values_than_classes_is_refused(tmp_path):
    root = _tiny_dataset(tmp_path)
    values = np.zeros(SHAPE, np.float32)
    values[0, 0, :2] = (2.5, -1.0)
    for sub in ("01", "02"):
        _save(dseg_path(root, sub), values)
    with pytest.raises(DataValidationError) as info:
        validate_subject(discover_subjects(root, tissues=True)[0])
    problem = "dseg holds values that are not classes (-1, 2.5)"
    assert str(info.value) == f"{dseg_path(root, '01')}: {problem}"


def test_each_session_is_a_scan_with_its_own_files_and_labels(tmp_path):
    root = _tiny_dataset(tmp_path)
    into_sessions(root, "01", ("pre", "post"))
    records = discover_subjects(root)
    assert [(r.participant_id, r.session, r.scan) for r in records] == [
        ("01", "post", "01_ses-post"), ("01", "pre", "01_ses-pre"), ("02", None, "02"),
    ]  # fmt: skip
    post = records[0]
    assert post.group == "HC"  # participants.tsv names the participant, not the session
    anat = root / "sub-01" / "ses-post" / "anat"
    assert post.channels["echo-2"] == anat / "sub-01_ses-post_echo-2_part-mag_MEGRE.nii.gz"
    assert post.chimap == anat / "sub-01_ses-post_Chimap.nii.gz"
    assert post.labels["SN"] == (
        root / "derivatives/manual/sub-01/ses-post/anat/sub-01_ses-post_label-SN_mask.nii.gz"
    )
    assert validate_subject(post).shape == SHAPE
    assert scan_columns(post.scan) == {"participant_id": "sub-01", "session_id": "ses-post"}
    assert scan_columns("02") == {"participant_id": "sub-02"}
    for record in records:
        assert scan_of_row(scan_columns(record.scan)) == record.scan
    assert scans_in_words([r.scan for r in records]) == "scans (2 subjects, sessions)"
    assert scans_in_words(["01", "02"]) == "subjects"
    # A participant names each of its sessions; a scan id one session.
    assert [r.scan for r in discover_subjects(root, subjects=[1])] == ["01_ses-post", "01_ses-pre"]
    assert [r.scan for r in discover_subjects(root, subjects=["sub-01_ses-pre", "02"])] == [
        "01_ses-pre", "02",
    ]  # fmt: skip
    with pytest.raises(DataValidationError, match="no folder for subjects 01_ses-base"):
        discover_subjects(root, subjects=["01_ses-base"])
    # A session's missing file is named where it should be.
    (anat / "sub-01_ses-post_echo-3_part-mag_MEGRE.nii.gz").unlink()
    _expect_error(
        root, anat / "sub-01_ses-post_echo-3_part-mag_MEGRE.nii.gz", "missing channel echo-3"
    )
    (root / "sub-02" / "ses-x" / "func").mkdir(parents=True)  # no anat: not a scan here
    assert find_scans(root) == ["01_ses-post", "01_ses-pre", "02"]
    (root / "sub-02" / "ses-1 b" / "anat").mkdir(parents=True)
    _expect_error(root, root / "sub-02" / "ses-1 b", "not a BIDS session label")


def test_a_folder_named_like_a_session_is_refused_and_a_folder_id_names_itself(tmp_path):
    root = _tiny_dataset(tmp_path, ("01", "1"))
    assert [r.scan for r in discover_subjects(root, subjects=["01"])] == ["01"]
    assert [r.scan for r in discover_subjects(root, subjects=["1"])] == ["1"]
    (root / "sub-01").rename(root / "sub-01_ses-pre")  # not a session folder
    _expect_error(root, root / "sub-01_ses-pre", "not a BIDS participant label")
