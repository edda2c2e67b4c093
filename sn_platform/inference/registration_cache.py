"""Template registrations kept on disk, so that each image is registered once across the
processes that read it (a sweep's trials, its refit, ``sn-infer``, reruns), not once each.

An entry is keyed by the SHA-256 of the image file's bytes and the registration's version
(which changes whenever the registration does), so a renamed or copied file still hits and
a rewritten one misses. It holds a similarity transform's parameters as JSON, or a failed
registration. The folder is ``$SN_PLATFORM_CACHE``, else ``$XDG_CACHE_HOME/sn-platform``,
else ``~/.cache/sn-platform``, under ``registrations/``. An entry that cannot be read is a
miss; a cache that cannot be written (a read-only home) is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import NamedTuple

import SimpleITK as sitk

from sn_platform.data.io import write_text

CACHE_ENVIRONMENT = "SN_PLATFORM_CACHE"


class CachedRegistration(NamedTuple):
    """A registration read back: its transform, or None where it had failed."""

    transform: sitk.Similarity3DTransform | None


def cache_dir() -> Path:
    """The folder registrations are kept in (see the module's docstring)."""
    if os.environ.get(CACHE_ENVIRONMENT):
        root = Path(os.environ[CACHE_ENVIRONMENT])
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(base) / "sn-platform"
    return root / "registrations"


def registration_key(image: Path, version: str) -> str:
    """The key of ``image``'s registration: SHA-256 of its bytes and of ``version``."""
    digest = hashlib.sha256(version.encode())
    with Path(image).open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_registration(key: str) -> CachedRegistration | None:
    """The registration kept under ``key``, or None when there is none or it is unreadable."""
    try:
        entry = json.loads((cache_dir() / f"{key}.json").read_text())
        if entry["transform"] is None:
            return CachedRegistration(None)
        transform = sitk.Similarity3DTransform()
        transform.SetFixedParameters(entry["transform"]["fixed_parameters"])
        transform.SetParameters(entry["transform"]["parameters"])
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):
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
    try:
        write_text(cache_dir() / f"{key}.json", json.dumps({"transform": entry}))
    except OSError:  # a read-only or full disk: the registration is only not kept
        return
