"""The disk cache of template registrations: round trips, misses, and a subject registered
once across processes."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from sn_platform.data.disk_cache import CACHE_ENVIRONMENT
from sn_platform.inference import atlas
from sn_platform.inference.registration_cache import (
    cache_dir,
    load_registration,
    registration_key,
    store_registration,
)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENVIRONMENT, str(tmp_path / "cache"))
    return tmp_path / "cache" / "registrations"


def _similarity() -> sitk.Similarity3DTransform:
    transform = sitk.Similarity3DTransform()
    transform.SetCenter((1.5, -20.0, 7.25))
    transform.SetRotation((0.0, 0.0, 1.0), 0.1)
    transform.SetTranslation((2.0, -3.5, 0.25))
    transform.SetScale(1.07)
    return transform


def _image(path: Path, value: float) -> Path:
    nib.save(nib.Nifti1Image(np.full((4, 5, 6), value, np.float32), np.eye(4)), path)
    return path


def test_a_kept_transform_maps_points_as_the_original(cache: Path):
    original = _similarity()
    store_registration("k", original)
    loaded = load_registration("k")
    assert cache_dir() == cache and (cache / "k.json").exists()
    assert loaded is not None and loaded.transform is not None
    point = (10.0, -18.0, -12.0)
    np.testing.assert_allclose(
        loaded.transform.TransformPoint(point), original.TransformPoint(point), atol=1e-12
    )


def test_a_failed_registration_is_kept_as_none_and_a_broken_entry_is_a_miss(cache: Path):
    store_registration("failed", None)
    assert load_registration("failed") == (None,)
    assert load_registration("absent") is None
    (cache / "broken.json").write_text('{"transform": {"parameters": [1.0]')
    assert load_registration("broken") is None


def test_the_key_follows_the_bytes_and_the_version_not_the_name(tmp_path: Path):
    first = _image(tmp_path / "a.nii", 1.0)
    copy = tmp_path / "copy.nii"
    copy.write_bytes(first.read_bytes())
    other = _image(tmp_path / "b.nii", 2.0)
    assert registration_key(first, "v1") == registration_key(copy, "v1")
    assert registration_key(first, "v1") != registration_key(other, "v1")
    assert registration_key(first, "v1") != registration_key(first, "v2")


def test_an_unwritable_cache_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(CACHE_ENVIRONMENT, str(blocker))
    store_registration("k", _similarity())
    assert load_registration("k") is None


def test_a_subject_is_registered_once_across_processes(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    calls: list[str] = []

    def register(subject: sitk.Image, seed: int = 1) -> sitk.Similarity3DTransform:
        calls.append("registered")
        return _similarity()

    monkeypatch.setattr(atlas, "register_template", register)
    image = _image(tmp_path / "sub-01_echo-1.nii", 3.0)
    points = np.array([[0.0, -17.5, -12.5]])
    first = atlas.template_points_on(image, points)
    atlas._registration.cache_clear()  # a new process: only the disk cache is left
    second = atlas.template_points_on(image, points)
    assert calls == ["registered"]
    assert first is not None and second is not None
    np.testing.assert_allclose(second, first, atol=1e-9)
