"""Files checked once across processes (``bids.checked_geometry`` on ``data.disk_cache``):
passed checks are kept by the file's bytes and the kind of check, never a failure."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from sn_platform.data import bids
from sn_platform.data.bids import DataValidationError, checked_geometry
from sn_platform.data.disk_cache import CACHE_ENVIRONMENT, content_key, read_record, write_record

AFFINE = np.diag([0.5, 0.5, 1.0, 1.0])


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENVIRONMENT, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def full_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files whose voxels ``load_volume`` read."""
    reads: list[Path] = []
    load = bids.load_volume

    def counted(path: Path, kind: str = "image"):
        reads.append(Path(path))
        return load(path, kind)

    monkeypatch.setattr(bids, "load_volume", counted)
    return reads


def _write(path: Path, data: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data.astype(np.float32), AFFINE), path)
    return path


def test_a_checked_file_has_only_its_header_read_again(cache, full_reads, tmp_path):
    path = _write(tmp_path / "echo.nii.gz", np.arange(60.0).reshape(3, 4, 5))
    first = checked_geometry(path)
    again = checked_geometry(path)
    assert full_reads == [path]
    assert again.shape == first.shape == (3, 4, 5)
    np.testing.assert_array_equal(again.affine, AFFINE)
    assert len(list((cache / bids.CHECKED_KIND).glob("*.json"))) == 1


def test_a_rewritten_file_is_checked_again_and_its_fault_found(cache, full_reads, tmp_path):
    path = _write(tmp_path / "echo.nii.gz", np.ones((3, 4, 5)))
    checked_geometry(path)
    broken = np.ones((3, 4, 5))
    broken[1, 2, 3] = np.nan
    _write(path, broken)
    with pytest.raises(DataValidationError, match="1 NaN/Inf voxels"):
        checked_geometry(path)
    with pytest.raises(DataValidationError, match="1 NaN/Inf voxels"):
        checked_geometry(path)  # a failure is never kept
    assert full_reads == [path, path, path]


def test_passing_as_an_image_does_not_pass_a_label(cache, tmp_path):
    path = _write(tmp_path / "mask.nii.gz", np.full((3, 4, 5), 2.0))
    checked_geometry(path, "image")
    with pytest.raises(DataValidationError, match="label is not binary"):
        checked_geometry(path, "label")


def test_a_header_fault_is_found_even_for_bytes_that_passed(cache, tmp_path, monkeypatch):
    path = _write(tmp_path / "echo.nii.gz", np.ones((3, 4, 5)))
    checked_geometry(path)
    monkeypatch.setattr(bids, "MAX_VOLUME_BYTES", 8)  # the header checks run on every read
    with pytest.raises(DataValidationError, match="broken header"):
        checked_geometry(path)


def test_an_unwritable_cache_still_checks(tmp_path, monkeypatch, full_reads):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(CACHE_ENVIRONMENT, str(blocker))
    path = _write(tmp_path / "echo.nii.gz", np.ones((3, 4, 5)))
    assert checked_geometry(path).shape == checked_geometry(path).shape == (3, 4, 5)
    assert full_reads == [path, path]


def test_records_round_trip_and_an_unreadable_one_is_a_miss(cache, tmp_path):
    path = _write(tmp_path / "echo.nii.gz", np.ones((3, 4, 5)))
    key = content_key(path, "v1")
    assert key != content_key(path, "v2")
    write_record("things", key, {"value": 1.5})
    assert read_record("things", key) == {"value": 1.5}
    assert read_record("things", "absent") is None
    (cache / "things" / "broken.json").write_text('{"value": ')
    assert read_record("things", "broken") is None
    (cache / "things" / "list.json").write_text("[1, 2]")
    assert read_record("things", "list") is None
