"""The one preprocessing spec shared by training, sweeps and inference.

A ``PreprocessingSpec`` is plain data (JSON round-trip) recorded with every model, and
builds the TorchIO pipeline: canonical orientation, optional resampling, padding to at
least the patch size, optionally a box around the structures (``roi_mm``, the second
stage of a cascade), and per-channel intensity normalisation. The method's slab below the
red nucleus is placed after prediction, from the predicted RN
(``sn_platform.inference.localise``). Augmentation sits between the
spatial and the intensity steps, so it acts on magnitudes (Rician noise, bias field and
gamma need non-negative intensities).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch
import torchio as tio

from sn_platform.data.channels import (
    MEGRE_ECHOES,
    channel_key,
    check_channels,
    echo_channel,
)

LABEL_KEY = "label"
# The tissue label map (dseg) that synthetic contrasts are rendered from: a label map of its
# own, which takes the spatial steps with the channels but is neither a channel nor the target.
TISSUES_KEY = "tissues"
# A training subject's (C + 1,) bool: background, then whether each label was drawn.
ANNOTATED_KEY = "annotated"


@dataclass(frozen=True)
class PreprocessingSpec:
    """Serialisable description of the preprocessing.

    Parameters
    ----------
    channels : the images the network reads, in channel order (``sn_platform.data.channels``:
        ``echo-<n>``, ``NM``, ``Chimap``); each is its own TorchIO image
    orientation : voxel-axis orientation of the network input (RAS)
    spacing_mm : target voxel spacing (mm), or None to keep each subject's own
    min_shape : volumes smaller than this (voxels) are zero-padded up to it (the patch size)
    normalization : ``zscore`` (mean 0, SD 1 per channel) or ``percentile`` (0.5-99.5 % to 0-1)
    roi_mm : box (mm, X, Y, Z) around the structures that the network sees, normalised on
        its own; None for the whole field of view. Its centre comes from the labels in
        training and from a localiser on new data (``sn_platform.data.roi``)
    """

    channels: tuple[str, ...] = MEGRE_ECHOES
    orientation: str = "RAS"
    spacing_mm: tuple[float, float, float] | None = (0.5, 0.5, 1.0)
    min_shape: tuple[int, int, int] = (64, 64, 3)
    normalization: Literal["zscore", "percentile"] = "zscore"
    roi_mm: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.roi_mm is not None:
            object.__setattr__(self, "roi_mm", tuple(float(s) for s in self.roi_mm))
            if len(self.roi_mm) != 3 or min(self.roi_mm) <= 0:
                raise ValueError(f"roi_mm must be three positive sizes (mm), got {self.roi_mm}")
        object.__setattr__(self, "channels", check_channels(self.channels))
        object.__setattr__(self, "min_shape", tuple(int(n) for n in self.min_shape))
        if self.spacing_mm is not None:
            object.__setattr__(self, "spacing_mm", tuple(float(s) for s in self.spacing_mm))
        if self.normalization not in ("zscore", "percentile"):
            raise ValueError(
                f"normalization must be 'zscore' or 'percentile', got {self.normalization!r}"
            )
        if len(self.min_shape) != 3 or min(self.min_shape) < 1:
            raise ValueError(f"min_shape must be three positive sizes, got {self.min_shape}")

    @property
    def channel_keys(self) -> list[str]:
        """Subject keys of the channel images, in channel order."""
        return [channel_key(name) for name in self.channels]

    def orientation_transform(self) -> tio.Compose:
        """Float channels in the network's voxel orientation (the first spatial steps)."""
        return tio.Compose(
            [
                tio.To(torch.float32, include=self.channel_keys),
                tio.ToOrientation(self.orientation)
                if self.orientation != "RAS"
                else tio.ToCanonical(),
            ]
        )

    def padding(self) -> tio.Transform:
        """Zero-padding up to ``min_shape`` (the last spatial step)."""
        return tio.CropOrPad(self.min_shape, only_pad=True)

    def spatial_transform(self) -> tio.Compose:
        """Canonical orientation, resampling and padding (images and labels alike)."""
        steps: list[tio.Transform] = [self.orientation_transform()]
        if self.spacing_mm is not None:
            steps.append(tio.Resample(self.spacing_mm))
        steps.append(self.padding())
        return tio.Compose(steps)

    def intensity_transform(self) -> tio.Transform:
        """Per-channel normalisation: each channel is its own image, with its own statistics."""
        if self.normalization == "zscore":
            return tio.ZNormalization(include=self.channel_keys)
        return tio.RescaleIntensity(
            out_min_max=(0.0, 1.0), percentiles=(0.5, 99.5), include=self.channel_keys
        )

    def transform(
        self, augmentation: tio.Transform | None = None, spatial: bool = True
    ) -> tio.Compose:
        """Full pipeline: spatial steps, optional augmentation, intensity normalisation.

        ``spatial=False`` leaves out the spatial steps, for subjects that already had them.
        """
        steps: list[tio.Transform] = [self.spatial_transform()] if spatial else []
        if augmentation is not None:
            steps.append(augmentation)
        steps.append(self.intensity_transform())
        return tio.Compose(steps)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON-serialisable)."""
        data = asdict(self)
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in data.items()
        }

    def to_json(self) -> str:
        """JSON text of ``to_dict``."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessingSpec:
        """Inverse of ``to_dict``; unknown keys raise a ValueError naming them. The echo
        numbers (``echoes``) of a spec saved before channels had names read as MEGRE echoes."""
        data = dict(data)
        if "echoes" in data and "channels" not in data:
            data["channels"] = [echo_channel(number) for number in data.pop("echoes")]
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown preprocessing keys {unknown}; known: {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> PreprocessingSpec:
        """Inverse of ``to_json``."""
        return cls.from_dict(json.loads(text))
