"""Errors a user can cause, and the one-line form every entry point prints them in."""

from __future__ import annotations


class UsageError(ValueError):
    """A mistake in how a command was called or in what it was pointed at (a config value,
    a dataset); every entry point prints it on one line and exits with code 2."""


class ConfigError(UsageError):
    """A composed config that cannot run; the message names the key and the fix."""


class StorageError(OSError):
    """A write the disk refused (full, over quota); the message names the file and says the
    earlier version is intact."""


def folder_name(key: str, value: str) -> str:
    """``value`` when it names one folder inside its parent (no separator, not ``.`` or
    ``..``): a config value never leads a path out of the folder it belongs in."""
    text = str(value)
    if not text or text in (".", "..") or "/" in text or "\\" in text or "\0" in text:
        raise ConfigError(f"{key}: {text!r} must be a single folder name (no '/', not '..')")
    return text


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, at most ``limit`` characters (its type name when
    it has no message)."""
    return " ".join(str(error).split())[:limit] or type(error).__name__
