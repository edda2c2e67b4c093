"""nibabel's .nii.gz through ISA-L: ordinary, deterministic gzip files, read back exactly."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
from nibabel.openers import ImageOpener

import sn_platform.data  # noqa: F401 (importing it installs the codec)
from sn_platform.data.gzip_codec import isal_gzip_open


def _volume() -> nib.Nifti1Image:
    rng = np.random.default_rng(3)
    data = rng.integers(0, 4000, size=(30, 20, 10), dtype=np.int16)
    return nib.Nifti1Image(data, np.diag([0.5, 0.5, 1.0, 1.0]))


def test_importing_the_data_package_routes_nibabel_gzip_through_isal():
    assert ImageOpener.compress_ext_map[".gz"][0] is isal_gzip_open


def test_a_written_volume_is_plain_gzip_of_nibabels_own_bytes(tmp_path):
    image = _volume()
    path = tmp_path / "volume.nii.gz"
    nib.save(image, path)
    compressed = path.read_bytes()
    # gzip magic, deflate, no flags (no file name), zero modification time: the same
    # header nibabel's own DeterministicGzipFile writes.
    assert compressed[:4] == b"\x1f\x8b\x08\x00"
    assert compressed[4:8] == b"\x00\x00\x00\x00"
    # Python's zlib-based gzip reads it back to exactly what nibabel writes uncompressed.
    nib.save(image, tmp_path / "volume.nii")
    assert gzip.decompress(compressed) == (tmp_path / "volume.nii").read_bytes()


def test_the_same_volume_gives_the_same_bytes_and_reads_back_exactly(tmp_path):
    image = _volume()
    first, second = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    nib.save(image, first)
    nib.save(image, second)
    assert first.read_bytes() == second.read_bytes()
    np.testing.assert_array_equal(np.asarray(nib.load(first).dataobj), image.get_fdata())


def test_a_file_python_gzip_wrote_is_read(tmp_path):
    image = _volume()
    plain = tmp_path / "volume.nii"
    nib.save(image, plain)
    path = tmp_path / "zlib.nii.gz"
    path.write_bytes(gzip.compress(plain.read_bytes(), compresslevel=6))
    np.testing.assert_array_equal(np.asarray(nib.load(path).dataobj), image.get_fdata())
