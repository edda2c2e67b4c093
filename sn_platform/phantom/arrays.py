"""The phantom's array types, named once for every module of the package."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

# Coordinates and distances (mm), signals and chi (ppm) while the anatomy is computed.
FloatArray = NDArray[np.float64]
# Fields as large as the grid (bias, noise, QSM streaks): single precision halves them.
Float32Array = NDArray[np.float32]
# Masks: truth labels and rater tracings, per voxel.
BoolArray = NDArray[np.bool_]
