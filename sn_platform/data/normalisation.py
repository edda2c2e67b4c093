"""The spec's intensity normalisation of a box, fitted once and applied to its patches.

``PreprocessingSpec.intensity_transform`` normalises a whole box with TorchIO. A training box
gives many patches, so each echo's statistics are taken once, in one pass over the box
(``BoxNormalisation.fit``), and every patch cut from it is mapped with them: the voxels of
normalising the box and then cutting the patch, without TorchIO's masked copy of every voxel
(tests/data/test_normalisation.py holds the two equal for both methods).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# TorchIO's RescaleIntensity as the spec configures it (percentile: 0.5-99.5 % to 0-1).
PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class BoxNormalisation:
    """One echo's normalisation: clip to ``bounds`` (None: no clipping), then
    ``(x - shift) / scale``."""

    shift: float
    scale: float
    bounds: tuple[float, float] | None = None

    @classmethod
    def fit(cls, echo: torch.Tensor, method: str) -> BoxNormalisation:
        """The normalisation ``method`` (the spec's ``normalization``) of one echo of a box.

        Parameters
        ----------
        echo : (1, X, Y, Z) magnitudes of the whole box, after augmentation
        method : ``zscore`` (mean 0, SD 1) or ``percentile`` (0.5-99.5 % to 0-1)
        """
        values = echo.flatten().float()
        if method == "zscore":
            std = float(values.std())
            if std == 0:
                raise ValueError("an echo of the box is constant: its standard deviation is 0")
            return cls(float(values.mean()), std)
        if method == "percentile":
            low, high = (float(v) for v in np.percentile(values.numpy(), PERCENTILES))
            if high == low:  # TorchIO leaves a constant echo as it is
                return cls(0.0, 1.0)
            return cls(low, high - low, (low, high))
        raise ValueError(f"normalization must be 'zscore' or 'percentile', got {method!r}")

    def __call__(self, patches: torch.Tensor) -> torch.Tensor:
        """Patches of the echo (any shape), normalised (float32)."""
        values = patches.float()
        if self.bounds is not None:
            values = values.clamp(*self.bounds)
        return (values - self.shift) / self.scale
