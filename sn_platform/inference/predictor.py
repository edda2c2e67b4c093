"""Predict one subject: grid sampling and aggregation in the network's space, then back
onto the subject's original grid and orientation.

Training validation, the logged MLflow model and batch inference all call this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import torch
import torchio as tio
from numpy.typing import NDArray
from torch import nn

from sn_platform.data.bids import Geometry, SubjectRecord
from sn_platform.data.loaders import check_contrast, make_subject, stack_channels
from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.data.roi import spatial_in_box, structures_centre
from sn_platform.data.slab import METHOD_SLICE_MM, SlabRule
from sn_platform.devices import autocast
from sn_platform.evaluation.metrics import dice
from sn_platform.models.probabilities import class_probabilities

OVERLAP_MODES = ("average", "hann", "crop")
# Where the network's box came from: no box (the whole field of view), the localiser,
# given (the reference labels, in validation without a localiser), or the volume's centre
# (the localiser found nothing).
ROI_SOURCE_KEY = "roi_source"


@dataclass(frozen=True)
class InferenceSettings:
    """How a volume is tiled, aggregated and thresholded, and where its slab goes.

    Parameters
    ----------
    labels : what the network's classes are, in order after the background (``[SN]``:
        one sigmoid channel; ``[SN, RN, CC]``: a softmax over background and the three)
    patch_size : patch (voxels) seen by the network, (X, Y, Z)
    patch_overlap : overlap (voxels) between neighbouring patches; even numbers
    overlap_mode : TorchIO aggregation of overlapping patches (average, hann, crop)
    batch_size : patches per forward pass
    threshold : probability above which a voxel belongs to a label
    label_thresholds : a label's own threshold where it has one (``SN``, ``RN``, ``CC`` ->
        probability; ``trainer.calibrate_thresholds`` chooses them), else ``threshold``
    flip_tta : also predict the left-right mirrored volume and average the two
    slab_mm : thickness (mm) of the method's slab just below ``slab_reference``, in whole
        native slices (``data.slab.slices_for``: 3 of the method's 1 mm, 1 of 2.2 mm)
    slab_reference : the label the slab is placed below (the red nucleus)
    """

    labels: tuple[str, ...] = ("SN",)

    patch_size: tuple[int, int, int] = (64, 64, 3)
    patch_overlap: tuple[int, int, int] = (16, 16, 0)
    overlap_mode: str = "average"
    batch_size: int = 4
    threshold: float = 0.5
    label_thresholds: dict[str, float] = field(default_factory=dict)
    flip_tta: bool = False
    slab_mm: float = 3.0
    slab_reference: str = "RN"

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(str(name) for name in self.labels))
        object.__setattr__(self, "patch_size", tuple(int(n) for n in self.patch_size))
        object.__setattr__(self, "patch_overlap", tuple(int(n) for n in self.patch_overlap))
        if len(self.patch_size) != 3 or min(self.patch_size) < 1:
            raise ValueError(f"patch_size must be three positive sizes, got {self.patch_size}")
        overlap, patch = self.patch_overlap, self.patch_size
        if len(overlap) != 3 or any(
            o < 0 or o % 2 or o >= p for o, p in zip(overlap, patch, strict=True)
        ):
            raise ValueError(
                f"patch_overlap must be three even sizes smaller than the patch {patch}, "
                f"got {overlap}"
            )
        if self.overlap_mode not in OVERLAP_MODES:
            raise ValueError(
                f"overlap_mode must be one of {OVERLAP_MODES}, got {self.overlap_mode!r}"
            )
        object.__setattr__(
            self, "label_thresholds", {str(k): float(v) for k, v in self.label_thresholds.items()}
        )
        given = {"threshold": self.threshold} | {
            f"label_thresholds.{label}": value for label, value in self.label_thresholds.items()
        }
        for name, value in given.items():
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {value}")
        unknown = sorted(set(self.label_thresholds) - set(self.labels))
        if unknown:
            raise ValueError(
                f"label_thresholds names {unknown}, which are not labels {list(self.labels)}"
            )
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.slab_mm <= 0:
            raise ValueError(f"slab_mm must be > 0, got {self.slab_mm}")

    def threshold_of(self, label: str) -> float:
        """The probability above which a voxel belongs to ``label``."""
        return self.label_thresholds.get(label, self.threshold)

    @property
    def slab_rule(self) -> SlabRule:
        """Where the method's slab goes: ``slab_mm`` below ``slab_reference``."""
        return SlabRule(self.slab_mm, self.slab_reference)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InferenceSettings:
        """Inverse of ``to_dict``; a model saved before ``slab_mm`` gave ``slab_slices``,
        slices of the method's 1 mm."""
        data = dict(data)
        if "slab_slices" in data:
            data["slab_mm"] = float(data.pop("slab_slices")) * METHOD_SLICE_MM
        return cls(**data)


def label_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """(B, K, X, Y, Z) probability of each of the K labels from logits (B, C, X, Y, Z):
    ``class_probabilities`` without the background class (a one-channel network's only
    channel is its label)."""
    probabilities = class_probabilities(logits)
    return probabilities if probabilities.shape[1] == 1 else probabilities[:, 1:]


@torch.inference_mode()
def predict_passes(
    model: nn.Module,
    volume: torch.Tensor,
    settings: InferenceSettings,
    device: torch.device,
    precision: str = "none",
) -> list[torch.Tensor]:
    """Label probabilities (K, X, Y, Z) of each test-time pass over a preprocessed volume
    (C, X, Y, Z), tiled by TorchIO: the volume, and its left-right mirror with ``flip_tta``
    (flipped back). The volume must be at least the patch size along each axis.
    """
    if any(n < p for n, p in zip(volume.shape[1:], settings.patch_size, strict=True)):
        raise ValueError(
            f"volume {tuple(volume.shape[1:])} is smaller than the patch {settings.patch_size}"
        )
    model.eval()
    probabilities = []
    for mirrored in [False, True] if settings.flip_tta else [False]:
        # Axis 1 is left-right: the spec puts every volume in RAS.
        data = torch.flip(volume, dims=(1,)) if mirrored else volume
        subject = tio.Subject(image=tio.ScalarImage(tensor=data.float()))
        sampler = tio.GridSampler(subject, settings.patch_size, settings.patch_overlap)
        aggregator = tio.GridAggregator(sampler, overlap_mode=settings.overlap_mode)
        for batch in tio.SubjectsLoader(sampler, batch_size=settings.batch_size):  # type: ignore[arg-type]
            inputs = batch["image"][tio.DATA].to(device)
            with autocast(device, precision):
                logits = model(inputs)
            aggregator.add_batch(label_probabilities(logits.float()).cpu(), batch[tio.LOCATION])
        probability = aggregator.get_output_tensor().float()
        probabilities.append(torch.flip(probability, dims=(1,)) if mirrored else probability)
    return probabilities


def predict_array(
    model: nn.Module,
    volume: torch.Tensor,
    settings: InferenceSettings,
    device: torch.device,
    precision: str = "none",
) -> torch.Tensor:
    """Label probabilities (K, X, Y, Z): the mean of ``predict_passes``."""
    return torch.stack(predict_passes(model, volume, settings, device, precision)).mean(dim=0)


def pass_agreement(passes: list[torch.Tensor], threshold: float) -> float:
    """Dice between the first label's masks of the first two test-time passes (NaN with
    one pass)."""
    if len(passes) < 2:
        return float("nan")
    first, second = (p[0].numpy() > threshold for p in passes[:2])
    return dice(first, second)


@dataclass(frozen=True)
class NativePrediction:
    """A prediction on the subject's original grid.

    ``probabilities`` (K, X, Y, Z) float32 in [0, 1], one per label of ``labels``;
    ``field_of_view`` (X, Y, Z) bool, the voxels the network saw; ``affine`` (4, 4) of
    the first input, mm; ``roi_source`` where the network's box came from (``whole``,
    ``localiser``, ``given`` or ``centre``, see ``preprocess_record``).
    """

    probabilities: NDArray[np.float32]
    field_of_view: NDArray[np.bool_]
    affine: NDArray[np.float64]
    labels: tuple[str, ...] = ("SN",)
    tta_dice: float = float("nan")
    roi_source: str = "whole"

    def probability(self, label: str = "SN") -> NDArray[np.float32]:
        """(X, Y, Z) probability of ``label``; all zeros when the model has no such label."""
        if label not in self.labels:
            return np.zeros(self.probabilities.shape[1:], dtype=np.float32)
        return self.probabilities[self.labels.index(label)]

    def mask(self, threshold: float, label: str = "SN") -> NDArray[np.bool_]:
        """Binary mask of ``label``: probability above ``threshold``."""
        return self.probability(label) > threshold


def _shape3(shape: Sequence[int]) -> tuple[int, int, int]:
    """The first three sizes of ``shape`` as ints (a grid's spatial shape)."""
    return (int(shape[0]), int(shape[1]), int(shape[2]))


def native_window(network: Geometry, native: Geometry) -> tuple[slice, ...]:
    """The native voxels (one slice per axis) that the network's volume can reach: its
    corners mapped into the native grid, one voxel of margin, clipped to the grid."""
    edges = [(-0.5, n - 0.5) for n in network.shape]
    corners = np.array([[x, y, z, 1.0] for x in edges[0] for y in edges[1] for z in edges[2]])
    voxels = (np.linalg.inv(native.affine) @ network.affine @ corners.T)[:3]
    low = np.clip(np.floor(voxels.min(axis=1)).astype(int) - 1, 0, None)
    high = np.minimum(np.ceil(voxels.max(axis=1)).astype(int) + 2, np.asarray(native.shape))
    return tuple(slice(int(a), int(max(a, b))) for a, b in zip(low, high, strict=True))


def to_native_grid(
    probability: torch.Tensor,
    network_affine: NDArray[np.float64],
    native_shape: Sequence[int],
    native_affine: NDArray[np.float64],
) -> NativePrediction:
    """Resample network-space probabilities (K, X, Y, Z) onto the native grid (world space).

    Linear interpolation for the probability, nearest neighbour for the field of view;
    native voxels outside the network's volume get probability 0. Only the native voxels
    the network's volume reaches (``native_window``: a cascade's box is a small part of
    the field of view) are resampled.
    """
    native_affine = np.asarray(native_affine, dtype=np.float64)
    shape = _shape3(native_shape)
    window = native_window(
        Geometry(_shape3(probability.shape[1:]), network_affine), Geometry(shape, native_affine)
    )
    values = np.zeros((probability.shape[0], *shape), dtype=np.float32)
    field_of_view = np.zeros(shape, dtype=bool)
    sub_shape = tuple(s.stop - s.start for s in window)
    if min(sub_shape) > 0:
        sub_affine = native_affine.copy()
        sub_affine[:3, 3] = native_affine[:3] @ np.array([s.start for s in window] + [1.0])
        subject = tio.Subject(
            probability=tio.ScalarImage(tensor=probability.float(), affine=network_affine),
            field_of_view=tio.LabelMap(
                tensor=torch.ones_like(probability[:1], dtype=torch.uint8), affine=network_affine
            ),
        )
        resampled = tio.Resample((sub_shape, sub_affine))(subject)
        inside = resampled.get_image("field_of_view").data[0].numpy().astype(bool)
        sampled = resampled.get_image("probability").data.numpy().clip(0.0, 1.0)
        values[(slice(None), *window)] = sampled * inside
        field_of_view[window] = inside
    return NativePrediction(values, field_of_view, native_affine)


def preprocess_record(
    record: SubjectRecord,
    spec: PreprocessingSpec,
    localiser: Localiser | None = None,
    centre_mm: NDArray[np.float64] | None = None,
) -> tio.Subject:
    """The record's channels in the network's space; with ``spec.roi_mm``, cropped to the box
    around ``centre_mm`` (world mm) when given, else around the structures ``localiser``
    finds, else (it found none, or there is none) around the volume's centre.

    The subject's ``roi_source`` says which: ``whole`` (no box), ``given``, ``localiser``
    or ``centre``.
    """
    subject = make_subject(record, spec)
    if spec.roi_mm is None:
        source = "whole"
        subject = spec.spatial_transform()(subject)
    else:
        source = "given"
        if centre_mm is None:
            source = "localiser"
            centre_mm = localiser.locate(record) if localiser is not None else None
        if centre_mm is None:
            source = "centre"  # spatial_in_box's default: the volume's centre
        subject = spatial_in_box(subject, spec, centre_mm)
    check_contrast(subject, spec)
    subject = spec.intensity_transform()(subject)
    subject[ROI_SOURCE_KEY] = source
    return subject


class Localiser(Protocol):
    """A cascade's first stage: where the second stage's box goes on a subject."""

    def locate(self, record: SubjectRecord) -> NDArray[np.float64] | None:
        """World centre (RAS mm) of the midbrain's structures; None when none was found."""
        ...


@dataclass
class Segmenter:
    """A trained network with the preprocessing and inference settings it was trained with.

    ``config`` is the network's ``_target_`` and arguments (to rebuild it elsewhere);
    ``localiser`` the first stage of a cascade, which centres this network's box
    (``spec.roi_mm``): a coarse segmenter over the whole field of view (its structures'
    centre) or an ``inference.atlas.AtlasLocaliser`` (a registered template's midbrain).
    """

    model: nn.Module
    spec: PreprocessingSpec
    settings: InferenceSettings
    device: torch.device
    precision: str = "none"
    config: dict[str, Any] = field(default_factory=dict)
    localiser: Localiser | None = None

    def preprocess(self, record: SubjectRecord) -> tio.Subject:
        """The record's channels in the network's space (``preprocess_record``)."""
        return preprocess_record(record, self.spec, self.localiser)

    def locate(self, record: SubjectRecord) -> NDArray[np.float64] | None:
        """World centre (mm) of the structures (any label) this network finds in the
        record, or None when it finds none (``sn_platform.data.roi.structures_centre``)."""
        subject = self.preprocess(record)
        volume = stack_channels(subject, self.spec)
        probability = predict_array(self.model, volume, self.settings, self.device, self.precision)
        affine = subject.get_image(self.spec.channel_keys[0]).affine
        foreground = probability.max(dim=0).values.numpy()
        return structures_centre(foreground, affine, self.settings.threshold)

    def predict_preprocessed(
        self, subject: tio.Subject, native_shape: Sequence[int], native_affine: NDArray
    ) -> NativePrediction:
        """Predict a preprocessed subject and map it onto the given native grid.

        With ``flip_tta`` the result also carries the Dice between the two passes.
        """
        volume = stack_channels(subject, self.spec)
        passes = predict_passes(self.model, volume, self.settings, self.device, self.precision)
        probability = torch.stack(passes).mean(dim=0)
        network_affine = subject.get_image(self.spec.channel_keys[0]).affine
        native = to_native_grid(probability, network_affine, native_shape, native_affine)
        agreement = pass_agreement(passes, self.settings.threshold_of(self.settings.labels[0]))
        source = str(subject.get(ROI_SOURCE_KEY, "whole"))
        return replace(native, labels=self.settings.labels, tta_dice=agreement, roi_source=source)

    def predict(self, record: SubjectRecord) -> NativePrediction:
        """Predict a subject from its files onto the grid of its first channel."""
        native = tio.ScalarImage(record.grid_image)
        return self.predict_preprocessed(
            self.preprocess(record), native.spatial_shape, native.affine
        )
