"""TorchIO datasets: subjects with one image per echo, a training patch queue, whole volumes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torchio as tio
from torch.utils.data import DataLoader

from sn_platform.data.bids import SubjectRecord
from sn_platform.data.preprocessing import LABEL_KEY, PreprocessingSpec, echo_key


def make_subject(
    record: SubjectRecord, spec: PreprocessingSpec, label: str | None = "SN"
) -> tio.Subject:
    """A TorchIO subject: the spec's echoes as separate images, the label, and the slab reference.

    The reference label (RN) is included when the record has it, so the slab can be cut.
    """
    missing = [e for e in spec.echoes if e > len(record.echoes)]
    if missing:
        raise ValueError(
            f"sub-{record.participant_id}: echoes {missing} requested "
            f"but {len(record.echoes)} discovered"
        )
    images: dict[str, object] = {
        echo_key(e): tio.ScalarImage(record.echoes[e - 1]) for e in spec.echoes
    }
    if label is not None and label in record.labels:
        images[LABEL_KEY] = tio.LabelMap(record.labels[label])
    if spec.slab_slices is not None and spec.slab_reference in record.labels:
        images[spec.slab_reference] = tio.LabelMap(record.labels[spec.slab_reference])
    return tio.Subject(participant_id=record.participant_id, group=record.group or "n/a", **images)


def stack_echoes(batch: Mapping[str, Any], spec: PreprocessingSpec) -> torch.Tensor:
    """Network input (B, C, X, Y, Z) from a batch, or (C, X, Y, Z) from one subject.

    A TorchIO image is a mapping too, so ``[tio.DATA]`` serves both.
    """
    return torch.cat([batch[key][tio.DATA] for key in spec.echo_keys], dim=-4)


def subjects_dataset(
    records: Sequence[SubjectRecord],
    spec: PreprocessingSpec,
    augmentation: tio.Transform | None = None,
    label: str | None = "SN",
    cache: bool = True,
) -> tio.SubjectsDataset:
    """Subjects with the full preprocessing (and augmentation, for training).

    With ``cache`` the spatial steps (read, reorient, resample, slab, pad) run once, here,
    and only augmentation and normalisation run at every access: an epoch re-reads nothing.
    """
    subjects = [make_subject(r, spec, label) for r in records]
    if not cache:
        return tio.SubjectsDataset(subjects, transform=spec.transform(augmentation))
    spatial = spec.spatial_transform()
    prepared = [spatial(subject) for subject in subjects]
    return tio.SubjectsDataset(prepared, transform=spec.transform(augmentation, spatial=False))


def training_queue(
    dataset: tio.SubjectsDataset,
    patch_size: Sequence[int],
    samples_per_volume: int,
    max_length: int,
    label_probabilities: Mapping[int, float] | None = None,
    num_workers: int = 0,
) -> tio.Queue:
    """Patch queue with a label-weighted sampler (random crops centred on SN or background)."""
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
