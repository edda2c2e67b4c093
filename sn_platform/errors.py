"""Errors a user can cause, and the one-line form every entry point prints them in."""

from __future__ import annotations


class ConfigError(ValueError):
    """A composed config that cannot run; the message names the key and the fix."""


class StorageError(OSError):
    """A write the disk refused (full, over quota); the message names the file and says the
    earlier version is intact."""


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, at most ``limit`` characters (its type name when
    it has no message)."""
    return " ".join(str(error).split())[:limit] or type(error).__name__
