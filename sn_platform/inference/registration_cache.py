"""Template registrations kept on disk (``data.disk_cache``), so that each image is
registered once across the processes that read it (a sweep's trials, its refit,
``sn-infer``, reruns), not once each.

An entry is keyed by the SHA-256 of the image file's bytes and the registration's version
(which changes whenever the registration does). It holds a similarity transform's
parameters as JSON, or a failed registration, under ``registrations/`` of the cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import SimpleITK as sitk

from sn_platform.data.disk_cache import cache_root, content_key, read_record, write_record

KIND = "registrations"


class CachedRegistration(NamedTuple):
    """A registration read back: its transform, or None where it had failed."""

    transform: sitk.Similarity3DTransform | None


def cache_dir() -> Path:
    """The folder registrations are kept in."""
    return cache_root() / KIND


def registration_key(image: Path, version: str) -> str:
    """The key of ``image``'s registration: SHA-256 of its bytes and of ``version``."""
    return content_key(image, version)


def load_registration(key: str) -> CachedRegistration | None:
    """The registration kept under ``key``, or None when there is none or it is unreadable."""
    entry = read_record(KIND, key)
    if entry is None:
        return None
    try:
        if entry["transform"] is None:
            return CachedRegistration(None)
        transform = sitk.Similarity3DTransform()
        transform.SetFixedParameters(entry["transform"]["fixed_parameters"])
        transform.SetParameters(entry["transform"]["parameters"])
    except (ValueError, KeyError, TypeError, RuntimeError):
        return None
    return CachedRegistration(transform)


def store_registration(key: str, transform: sitk.Similarity3DTransform | None) -> None:
    """Keep ``transform`` (None: the registration failed) under ``key``; skipped where the
    cache cannot be written."""
    entry = None
    if transform is not None:
        entry = {
            "parameters": list(transform.GetParameters()),
            "fixed_parameters": list(transform.GetFixedParameters()),
        }
    write_record(KIND, key, {"transform": entry})
