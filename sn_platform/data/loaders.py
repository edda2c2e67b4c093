"""TorchIO datasets: subjects with one image per channel, a training patch queue, whole volumes.

A subject is made of the spec's channels, the class map of its labels (the target) and, when
the augmentation renders images from it, the tissue label map (``TISSUES_KEY``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torchio as tio
from torch.utils.data import DataLoader

from sn_platform.data.augment import reads_tissues
from sn_platform.data.bids import DataValidationError, SubjectRecord
from sn_platform.data.preprocessing import (
    ANNOTATED_KEY,
    LABEL_KEY,
    TISSUES_KEY,
    PreprocessingSpec,
)
from sn_platform.data.roi import mask_centre, spatial_in_box


def class_map(record: SubjectRecord, labels: Sequence[str]) -> tio.LabelMap:
    """One label map of class indices (X, Y, Z): 0 background, ``i`` the i-th of ``labels``;
    a label the record lacks has no voxels (see ``annotated``).

    Where labels overlap (a generously drawn SN over the crus) the earlier label wins,
    so the first label (the SN) is never lost.
    """
    present = [(i, name) for i, name in enumerate(labels, start=1) if name in record.labels]
    first = tio.LabelMap(record.labels[present[0][1]])
    classes = torch.zeros_like(first.data, dtype=torch.uint8)
    for index, name in reversed(present):
        classes[tio.LabelMap(record.labels[name]).data > 0] = index
    return tio.LabelMap(tensor=classes, affine=first.affine)


def annotated(record: SubjectRecord, labels: Sequence[str]) -> torch.Tensor:
    """(C + 1,) bool: True for the background and for each of ``labels`` the record has."""
    return torch.tensor([True, *(name in record.labels for name in labels)])


def make_subject(
    record: SubjectRecord,
    spec: PreprocessingSpec,
    labels: Sequence[str] = (),
    tissues: bool = False,
    partial: bool = False,
) -> tio.Subject:
    """A TorchIO subject: the spec's channels as separate images; when ``labels`` are given
    and the record has all of them (with ``partial``: any of them), their class map
    (``class_map``) and which were drawn (``ANNOTATED_KEY``, ``annotated``); with
    ``tissues``, the record's tissue label map (``discover_subjects(..., tissues=True)``
    finds it)."""
    missing = [name for name in spec.channels if name not in record.channels]
    if missing:
        raise ValueError(
            f"sub-{record.scan}: channels {missing} requested "
            f"but {list(record.channels)} discovered"
        )
    images: dict[str, object] = {
        key: tio.ScalarImage(record.channels[name])
        for name, key in zip(spec.channels, spec.channel_keys, strict=True)
    }
    extra: dict[str, object] = {}
    drawn = [name in record.labels for name in labels]
    if drawn and (any(drawn) if partial else all(drawn)):
        images[LABEL_KEY] = class_map(record, labels)
        extra[ANNOTATED_KEY] = annotated(record, labels)
    if tissues:
        if record.tissues is None:
            raise ValueError(
                f"sub-{record.scan}: no tissue label map discovered "
                "(discover_subjects(..., tissues=True))"
            )
        images[TISSUES_KEY] = tio.LabelMap(record.tissues)
    return tio.Subject(scan=record.scan, group=record.group or "n/a", **extra, **images)


def stack_channels(batch: Mapping[str, Any], spec: PreprocessingSpec) -> torch.Tensor:
    """Network input (B, C, X, Y, Z) from a batch, or (C, X, Y, Z) from one subject.

    A TorchIO image is a mapping too, so ``[tio.DATA]`` serves both.
    """
    return torch.cat([batch[key][tio.DATA] for key in spec.channel_keys], dim=-4)


def subjects_dataset(
    records: Sequence[SubjectRecord],
    spec: PreprocessingSpec,
    augmentation: tio.Transform | None = None,
    labels: Sequence[str] = ("SN",),
    cache: bool = True,
    partial: bool = False,
) -> tio.SubjectsDataset:
    """Subjects with the full preprocessing (and augmentation, for training).

    With ``cache`` the spatial steps (read, reorient, resample, pad) run once, here,
    and only augmentation and normalisation run at every access: an epoch re-reads nothing.
    With ``spec.roi_mm`` each subject is cropped to the box around its labels' centre
    (``spatially_prepared``), so caching is then required. An augmentation that renders
    images from the tissue label map (``reads_tissues``) gets it, through the same steps.
    With ``partial`` a record may have any of ``labels`` (``make_subject``).
    """
    tissues = reads_tissues(augmentation)
    if not cache:
        if spec.roi_mm is not None:
            raise ValueError("a region of interest (roi_mm) needs the cached spatial steps")
        subjects = [make_subject(r, spec, labels, tissues, partial) for r in records]
        return tio.SubjectsDataset(subjects, transform=spec.transform(augmentation))
    prepared = prepared_subjects(records, spec, labels, tissues, partial)
    return tio.SubjectsDataset(prepared, transform=spec.transform(augmentation, spatial=False))


def prepared_subjects(
    records: Sequence[SubjectRecord],
    spec: PreprocessingSpec,
    labels: Sequence[str] = ("SN",),
    tissues: bool = False,
    partial: bool = False,
) -> list[tio.Subject]:
    """Subjects (``make_subject``) read and taken through the spec's spatial steps once
    (``spatially_prepared``), held in memory: the boxes that training draws patches from."""
    return [
        spatially_prepared(make_subject(r, spec, labels, tissues, partial), spec) for r in records
    ]


def spatially_prepared(subject: tio.Subject, spec: PreprocessingSpec) -> tio.Subject:
    """The spec's spatial steps; with ``spec.roi_mm`` only the box around the centre of the
    subject's labels (every class), resampled on its own (``spatial_in_box``)."""
    if spec.roi_mm is None:
        prepared = spec.spatial_transform()(subject)
    else:
        if LABEL_KEY not in subject:
            raise ValueError(f"sub-{subject['scan']}: a region of interest needs labels")
        label = subject.get_image(LABEL_KEY)
        centre = mask_centre(label.data[0].numpy() > 0, label.affine)
        if centre is None:
            raise ValueError(f"sub-{subject['scan']}: labels are empty, no region to crop")
        prepared = spatial_in_box(subject, spec, centre)
    check_contrast(prepared, spec)
    return prepared


def check_contrast(subject: tio.Subject, spec: PreprocessingSpec) -> None:
    """Refuse a channel of ``spec`` that is constant in ``subject`` after the spatial steps
    (a blank series, or a box outside what was imaged): nothing to segment or learn, and
    its z-score would divide by 0.

    Raises
    ------
    DataValidationError
        naming the channel's file and its one value.
    """
    where = "the volume" if spec.roi_mm is None else "the box around the midbrain"
    for key in spec.channel_keys:
        image = subject.get_image(key)
        data = image.data
        if data.numel() and bool(data.min() == data.max()):
            source = image.path if isinstance(image.path, Path) else None
            raise DataValidationError(
                source or f"sub-{subject.get('scan', '?')} channel {key}",
                f"every voxel of {where} is {float(data.flatten()[0]):g}: no contrast to segment",
            )


def training_queue(
    dataset: tio.SubjectsDataset,
    patch_size: Sequence[int],
    samples_per_volume: int,
    max_length: int,
    label_probabilities: Mapping[int, float] | None = None,
    num_workers: int = 0,
) -> tio.Queue:
    """Patch queue with a class-weighted sampler (random crops centred on each class with
    its probability: background, SN, RN, CC ...)."""
    probabilities = dict(label_probabilities or {0: 0.5, 1: 0.5})
    patch = (int(patch_size[0]), int(patch_size[1]), int(patch_size[2]))
    sampler = tio.LabelSampler(patch, label_name=LABEL_KEY, label_probabilities=probabilities)
    return tio.Queue(
        dataset,
        max_length=max_length,
        samples_per_volume=samples_per_volume,
        sampler=sampler,
        num_workers=num_workers,
    )


def patch_loader(queue: tio.Queue, batch_size: int) -> DataLoader:
    """Batches of patches; the queue already shuffles, and workers live in the queue."""
    return tio.SubjectsLoader(queue, batch_size=batch_size, num_workers=0)
