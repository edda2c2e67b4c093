"""Voxel-axis orientation helpers built on nibabel's orientation codes."""

from __future__ import annotations

from collections.abc import Callable

import nibabel as nib
import numpy as np
from numpy.typing import NDArray


def reorient_from_ras(
    affine: NDArray[np.float64], shape: tuple[int, int, int], axcodes: str
) -> tuple[NDArray[np.float64], Callable[[NDArray], NDArray]]:
    """Affine and array transform that store a RAS-ordered volume in ``axcodes`` order.

    Parameters
    ----------
    affine : (4, 4) voxel-to-world affine of the RAS-ordered array
    shape : spatial shape of the RAS-ordered array
    axcodes : target voxel-axis codes, e.g. ``"LAS"`` or ``"PIR"``

    Returns
    -------
    The (4, 4) affine of the reoriented array, and a function that reorients a (X, Y, Z)
    array; world coordinates of every voxel are unchanged.
    """
    transform = nib.orientations.ornt_transform(
        nib.orientations.axcodes2ornt("RAS"), nib.orientations.axcodes2ornt(tuple(axcodes))
    )
    new_affine = affine @ nib.orientations.inv_ornt_aff(transform, shape)

    def reorient(array: NDArray) -> NDArray:
        return np.ascontiguousarray(nib.orientations.apply_orientation(array, transform))

    return new_affine, reorient


def canonical_array(array: NDArray, affine: NDArray[np.float64]) -> NDArray:
    """``array`` (X, Y, Z) reordered to the closest canonical (RAS) voxel orientation."""
    return np.asarray(nib.as_closest_canonical(nib.Nifti1Image(array, affine)).dataobj)
