"""Small JSON records kept on disk across processes, keyed by the bytes of a file.

A sweep's trials, its refit and ``sn-infer`` are separate processes that read the same
subjects; what one of them derived from a file's bytes (a template registration, the
checks of a volume) is kept here so that the others do not derive it again. A key is the
SHA-256 of the file's bytes and of a version string that changes whenever the derivation
does, so a renamed or copied file still hits and a rewritten one misses. The folder is
``$SN_PLATFORM_CACHE``, else ``$XDG_CACHE_HOME/sn-platform``, else
``~/.cache/sn-platform``. A record that cannot be read is a miss; a cache that cannot be
written (a read-only home, a full disk) is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from sn_platform.data.io import write_text

CACHE_ENVIRONMENT = "SN_PLATFORM_CACHE"


def cache_root() -> Path:
    """The cache's folder (see the module's docstring)."""
    if os.environ.get(CACHE_ENVIRONMENT):
        return Path(os.environ[CACHE_ENVIRONMENT])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sn-platform"


def content_key(path: Path, version: str) -> str:
    """SHA-256 (hex) of ``version`` and of the bytes of the file at ``path``."""
    digest = hashlib.sha256(version.encode())
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_record(kind: str, key: str) -> dict[str, Any] | None:
    """The record kept under ``kind``/``key``, or None where there is none or it is
    unreadable."""
    try:
        record = json.loads((cache_root() / kind / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_record(kind: str, key: str, record: dict[str, Any]) -> None:
    """Keep ``record`` (plain JSON data) under ``kind``/``key``; skipped where the cache
    cannot be written."""
    try:
        write_text(cache_root() / kind / f"{key}.json", json.dumps(record))
    except OSError:  # a read-only or full disk: the record is only not kept
        return
