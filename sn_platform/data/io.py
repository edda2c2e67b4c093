"""Atomic file writing: a temporary file in the same folder, then a rename.

An interrupted run never leaves a half-written NIfTI or table behind.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from sn_platform.errors import StorageError

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
NEARLY_FULL_BYTES = 1 << 20


def _disk_full(error: BaseException, folder: Path) -> bool:
    """Did the disk refuse the write? An ENOSPC/EDQUOT error, or (writers such as
    ``torch.save`` re-raise it as a RuntimeError) a failure with the disk all but full."""
    if isinstance(error, OSError) and error.errno in DISK_FULL:
        return True
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(temporary)`` on a temporary file beside ``path``, then rename it to ``path``.

    The rename is atomic on one file system: readers see the old file or the whole new one.

    Raises
    ------
    StorageError
        when the disk is full (or over quota): ``path`` is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(
            dir=path.parent, prefix=".tmp-", suffix="".join(path.suffixes)
        )
        os.close(handle)
        temporary = Path(name)
        try:
            write(temporary)
            temporary.replace(path)
        finally:
            temporary.unlink(missing_ok=True)
    except Exception as error:
        if not _disk_full(error, path.parent):
            raise
        raise StorageError(
            f"{path}: no space left on device; the earlier version, if any, is intact: "
            "free some space and run again"
        ) from error


def write_nifti(
    path: Path,
    array: NDArray,
    affine: NDArray[np.float64],
    like: nib.Nifti1Header | None = None,
) -> None:
    """Write a NIfTI-1 volume (spatial units mm) atomically; the dtype of ``array`` is kept.

    With ``like`` (an input's header), its geometry is copied: the qform and sform with
    their codes, voxel sizes and units, so a mask overlays its input in every viewer.
    """
    if like is None:
        image = nib.Nifti1Image(array, affine)
        image.header.set_xyzt_units(xyz="mm")
        image.header.set_qform(affine, code=1)
        image.header.set_sform(affine, code=1)
    else:
        header = like.copy()
        header.set_data_dtype(array.dtype)
        header.set_slope_inter(1.0, 0.0)
        image = nib.Nifti1Image(array, affine, header=header)
        image.header.set_qform(like.get_qform(), code=int(like["qform_code"]) or 1)
        image.header.set_sform(like.get_sform(), code=int(like["sform_code"]) or 1)
    atomic_write(path, lambda temporary: nib.save(image, temporary))


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically."""
    atomic_write(path, lambda temporary: temporary.write_text(text))
