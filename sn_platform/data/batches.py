"""A training run's batches, epoch by epoch: the patches drawn by index (``data.pipeline``
``patches``, the default) or TorchIO's queue (``queue``, kept to compare against)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torchio as tio

from sn_platform.data.augment import reads_tissues
from sn_platform.data.bids import SubjectRecord
from sn_platform.data.loaders import (
    patch_loader,
    prepared_subjects,
    subjects_dataset,
    training_queue,
)
from sn_platform.data.patches import PatchGroups, PatchPipeline
from sn_platform.data.settings import DataSettings

# The batches of an epoch (0-based), as ``Trainer.fit`` takes them.
EpochBatches = Callable[[int], Iterable[Mapping[str, Any]]]


@contextlib.contextmanager
def training_batches(
    records: Sequence[SubjectRecord],
    settings: DataSettings,
    augmentation: tio.Transform | None,
    seed: int,
) -> Iterator[EpochBatches]:
    """The batches of each epoch of ``records`` as ``settings.pipeline`` draws them.

    ``patches``: a function of (``seed``, epoch) alone (``PatchPipeline``), whose workers end
    with the block. ``queue``: a new TorchIO queue every epoch, drawn from the global random
    state (which the run seeds, and a checkpoint restores).
    """
    spec = settings.preprocessing
    if settings.pipeline == "queue":
        dataset = subjects_dataset(
            records, spec, augmentation, settings.labels, partial=settings.partial_labels
        )

        def queued(epoch: int) -> Iterable[Mapping[str, Any]]:
            queue = training_queue(
                dataset, settings.patch_size, settings.samples_per_volume,
                settings.queue_length, settings.label_probabilities, settings.num_workers,
            )  # fmt: skip
            return patch_loader(queue, settings.batch_size)

        yield queued
        return
    subjects = prepared_subjects(
        records, spec, settings.labels, reads_tissues(augmentation), settings.partial_labels
    )
    with PatchPipeline(PatchGroups(subjects, spec, augmentation, settings, seed)) as pipeline:
        yield pipeline
