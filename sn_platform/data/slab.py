"""Selection of the method's slab: consecutive axial slices just below the red nucleus."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def slab_below(red_nucleus: NDArray[np.bool_], n_slices: int) -> list[int]:
    """Indices of the ``n_slices`` axial slices just below the red nucleus.

    ``red_nucleus`` is a (X, Y, Z) mask in canonical (RAS) order, so the third axis runs
    inferior to superior. Returns [] when the mask is empty; when the RN reaches the
    bottom of the volume the slab is clipped at slice 0 and may be shorter.
    """
    occupied = np.flatnonzero(red_nucleus.any(axis=(0, 1)))
    if occupied.size == 0:
        return []
    lowest = int(occupied[0])
    return list(range(max(lowest - n_slices, 0), lowest))
