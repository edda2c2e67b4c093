"""Atomic file writing: a temporary file in the same folder, then a rename.

An interrupted run never leaves a half-written NIfTI or table behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
from numpy.typing import NDArray


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=".tmp-", suffix="".join(path.suffixes)
    )
    os.close(handle)
    return Path(temporary)


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
    temporary = _atomic_target(Path(path))
    try:
        nib.save(image, temporary)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically."""
    temporary = _atomic_target(Path(path))
    try:
        temporary.write_text(text)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
