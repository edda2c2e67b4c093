"""Training patches drawn by index: the default pipeline of ``sn-train`` and of sweep trials.

The training boxes (the cached, spatially prepared subjects of ``loaders.prepared_subjects``)
are read once, put in shared memory, and handed once to data workers that live as long as
the pipeline (a DataLoader's persistent workers). Epoch ``e`` takes the subjects in a seeded
order; key ``(e, s)`` gives subject ``s``'s ``samples_per_volume`` patches from one
augmentation of its whole box (as TorchIO's queue augments a subject once for its patches),
normalised with the augmented box's statistics (``BoxNormalisation``), their centres drawn
as TorchIO's ``LabelSampler`` draws them (``patch_corners``). All that key ``(e, s)`` draws
follows from (seed, e, s) alone: the same in any worker, in any order, and after a resume.
``queue_length`` patches are mixed before batching, as the queue mixes its ``max_length``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping, Sequence
from itertools import islice
from types import TracebackType
from typing import Any, cast

import numpy as np
import torch
import torchio as tio
from torch.utils.data import DataLoader, Dataset, Sampler

from sn_platform.data.augment import in_place
from sn_platform.data.normalisation import BoxNormalisation
from sn_platform.data.preprocessing import ANNOTATED_KEY, LABEL_KEY, PreprocessingSpec
from sn_platform.data.settings import DataSettings
from sn_platform.seeding import seeded

INPUT = "input"
# Streams of the run's seed, so that the order, the mixing and a box's draws never share one.
ORDER, MIXING, BOX = 0, 1, 2

Patches = dict[str, torch.Tensor]


def generator(seed: int, epoch: int, stream: int, subject: int = 0) -> torch.Generator:
    """A torch generator seeded from (``seed``, ``epoch``, ``stream``, ``subject``); a
    negative run seed counts modulo 2^64, as NumPy seeds only with non-negative numbers."""
    entropy = [seed % 2**64, epoch, stream, subject]
    state = np.random.SeedSequence(entropy).generate_state(1, np.uint64)
    return torch.Generator().manual_seed(int(state[0]))


def patch_corners(
    label: torch.Tensor,
    patch_size: Sequence[int],
    probabilities: Mapping[int, float],
    count: int,
    draws: torch.Generator,
) -> torch.Tensor:
    """(count, 3) first voxels (X, Y, Z) of patches drawn as TorchIO's ``LabelSampler`` draws.

    A centre lies where the whole patch fits (of an even size, voxel ``size // 2`` is the
    centre); class ``c`` is taken with probability ``probabilities[c]`` among the classes
    with such a voxel, then one of its voxels uniformly.

    Parameters
    ----------
    label : (X, Y, Z) class indices of the box
    patch_size : (X, Y, Z) voxels, at most the box's
    probabilities : class -> probability of a patch centred on it (need not sum to 1)
    count : patches to draw
    draws : the generator they are drawn from

    Raises
    ------
    ValueError
        when no class with a positive probability has a voxel where a patch fits.
    """
    size = torch.tensor([int(n) for n in patch_size])
    first, last = size // 2, torch.tensor(label.shape) - (size - 1) // 2
    # A voxel's index in the region of centres is its patch's first voxel in the box.
    centres = label[first[0] : last[0], first[1] : last[1], first[2] : last[2]].long()
    classes = sorted(c for c, p in probabilities.items() if p > 0)
    counts = torch.bincount(centres.flatten(), minlength=max(classes) + 1)
    weights = torch.tensor(
        [probabilities[c] * bool(counts[c]) for c in classes], dtype=torch.float64
    )
    if not bool(weights.sum() > 0):
        raise ValueError(f"no voxel of classes {classes} where a {list(size.tolist())} patch fits")
    chosen = torch.multinomial(weights, count, replacement=True, generator=draws).tolist()
    voxels = {classes[i]: (centres == classes[i]).nonzero() for i in set(chosen)}
    picks = [voxels[classes[i]] for i in chosen]
    return torch.stack([v[int(torch.randint(len(v), (1,), generator=draws))] for v in picks])


def cohort_label_shares(
    probabilities: Mapping[int, float], carried: Sequence[Sequence[bool]]
) -> list[dict[int, float]]:
    """Each subject's share of patches centred on each class, so that a cohort whose
    subjects carry different labels (partial labels) centres on each class the share of its
    patches ``probabilities`` gives it in a fully labelled cohort.

    A class carried by a fraction ``f`` < 1 of the subjects takes ``share / f`` of their
    patches (none of the others'); the classes every subject carries (the background at
    least) share what is left of each subject's patches in their preset proportions. With
    the RN drawn on half the subjects, those subjects centre twice the RN's share on it. A
    fully labelled cohort keeps ``probabilities``; where a subject's partial classes would
    take more than all its patches, they take all of them, in proportion.

    Parameters
    ----------
    probabilities : class -> share of patches centred on it (0 the background)
    carried : per subject, per class index (background first), whether it was drawn
    """
    table = np.asarray(carried, dtype=bool)
    if table.all():
        return [dict(probabilities) for _ in table]
    fractions = table.mean(axis=0)
    total = sum(probabilities.values())
    target = {c: p / total for c, p in probabilities.items()}
    universal = [c for c in target if fractions[c] == 1.0]
    universal_total = sum(target[c] for c in universal)
    shares = []
    for row in table:
        partial = {c: target[c] / fractions[c] for c in target if row[c] and c not in universal}
        taken = sum(partial.values())
        if taken > 1.0:
            partial = {c: share / taken for c, share in partial.items()}
        left = max(0.0, 1.0 - taken)
        everyone = (
            {c: left * target[c] / universal_total for c in universal} if universal_total else {}
        )
        shares.append({c: float(partial.get(c, everyone.get(c, 0.0))) for c in probabilities})
    return shares


def cut_patches(
    volume: torch.Tensor, corners: torch.Tensor, patch_size: Sequence[int]
) -> torch.Tensor:
    """(N, C, x, y, z) patches of ``patch_size`` whose first voxels are ``corners`` (N, 3)
    in ``volume`` (C, X, Y, Z)."""
    x, y, z = (int(n) for n in patch_size)
    return torch.stack([volume[:, i : i + x, j : j + y, k : k + z] for i, j, k in corners.tolist()])


class PatchGroups(Dataset[Patches]):
    """Key (epoch, subject) -> that subject's patches of the epoch from one augmentation.

    Parameters
    ----------
    subjects : the training boxes, each with its class map (``LABEL_KEY``); their tensors are
        moved to shared memory, so workers read them without a copy
    spec : which images are the channels (``channel_keys``) and their normalisation
    augmentation : applied to the whole box once per key (None: none)
    settings : ``patch_size``, ``samples_per_volume`` and ``label_probabilities``
    seed : the run's seed
    """

    def __init__(
        self,
        subjects: Sequence[tio.Subject],
        spec: PreprocessingSpec,
        augmentation: tio.Transform | None,
        settings: DataSettings,
        seed: int,
    ):
        for subject in subjects:
            if LABEL_KEY not in subject:
                raise ValueError(f"sub-{subject['scan']}: a training box needs labels")
            for image in subject.get_images(intensity_only=False):
                # Resampled images come from SimpleITK transposed: make each pass read in order.
                image.set_data(image.data.contiguous().share_memory_())
        self.subjects = list(subjects)
        self.spec, self.settings, self.seed = spec, settings, seed
        self.label_shares = cohort_label_shares(
            settings.label_probabilities, [_carried(s, len(settings.labels)) for s in subjects]
        )
        self.augmentation = in_place(augmentation) if augmentation is not None else None

    def __len__(self) -> int:
        return len(self.subjects)

    def __getitem__(self, key: tuple[int, int]) -> Patches:
        """Patches of the box: ``INPUT`` (N, C, x, y, z) normalised channels, ``LABEL_KEY``
        (N, 1, x, y, z) classes, ``tio.LOCATION`` (N, 6) their first and past-the-last voxels
        in the box, as TorchIO's, and, for partial labels, ``ANNOTATED_KEY`` (N, C + 1)."""
        epoch, index = key
        draws = generator(self.seed, epoch, BOX, index)
        subject = self.subjects[index]
        if self.augmentation is not None:
            with seeded(int(torch.randint(2**62, (1,), generator=draws))):
                # The key's own copy of the shared box, augmented in place.
                subject = self.augmentation(copy.deepcopy(subject))
        settings = self.settings
        label = subject.get_image(LABEL_KEY).data
        corners = patch_corners(
            label[0], settings.patch_size, self.label_shares[index],
            settings.samples_per_volume, draws,
        )  # fmt: skip
        channels = []
        for name in self.spec.channel_keys:
            echo = subject.get_image(name).data
            normalise = BoxNormalisation.fit(echo, self.spec.normalization)
            channels.append(normalise(cut_patches(echo, corners, settings.patch_size)))
        size = torch.tensor(settings.patch_size)
        patches = {
            INPUT: torch.cat(channels, dim=1),
            LABEL_KEY: cut_patches(label, corners, settings.patch_size),
            tio.LOCATION: torch.cat([corners, corners + size], dim=1),
        }
        if ANNOTATED_KEY in subject:
            drawn = cast(torch.Tensor, subject[ANNOTATED_KEY])
            patches[ANNOTATED_KEY] = drawn.expand(len(corners), -1).clone()
        return patches


def _carried(subject: tio.Subject, labels: int) -> list[bool]:
    """Whether the background and each of ``labels`` labels were drawn on ``subject``
    (every one without partial labels)."""
    if ANNOTATED_KEY in subject:
        return [bool(v) for v in cast(torch.Tensor, subject[ANNOTATED_KEY])]
    return [True] * (labels + 1)


class EpochOrder(Sampler[tuple[int, int]]):
    """The keys of an epoch, (``epoch``, subject) for every subject in a seeded order; the
    pipeline sets ``epoch`` before each pass."""

    def __init__(self, subjects: int, seed: int):
        self.subjects, self.seed, self.epoch = subjects, seed, 0

    def __len__(self) -> int:
        return self.subjects

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = torch.randperm(self.subjects, generator=generator(self.seed, self.epoch, ORDER))
        return ((self.epoch, int(s)) for s in order)


class PatchPipeline:
    """Each epoch's batches of patches, drawn by key by persistent data workers.

    Call it with an epoch (0-based) for that epoch's batches; use it as a context manager,
    or ``close`` it, to end its workers.

    Parameters
    ----------
    groups : the patches of each key; its settings' ``queue_length`` (patches mixed before
        batching), ``batch_size`` and ``num_workers`` (0: drawn in this process) apply
    """

    def __init__(self, groups: PatchGroups):
        self.spec, self.settings, self.seed = groups.spec, groups.settings, groups.seed
        self.order = EpochOrder(len(groups), groups.seed)
        workers = self.settings.num_workers
        self.loader: DataLoader[Patches] | None = DataLoader(
            groups,
            batch_size=None,
            sampler=self.order,
            num_workers=workers,
            persistent_workers=workers > 0,
            # Worker seeds from a generator of our own: the run's streams stay untouched.
            generator=torch.Generator().manual_seed(groups.seed),
        )

    def __len__(self) -> int:
        """Batches per epoch."""
        return math.ceil(
            self.order.subjects * self.settings.samples_per_volume / self.settings.batch_size
        )

    def __call__(self, epoch: int) -> Iterator[dict[str, Any]]:
        """The batches of ``epoch`` in TorchIO's layout, which the engine reads: each echo
        key's and ``LABEL_KEY``'s ``tio.DATA`` (B, 1, x, y, z), ``tio.LOCATION`` (B, 6) and,
        for partial labels, ``ANNOTATED_KEY`` (B, C + 1)."""
        if self.loader is None:
            raise RuntimeError("the patch pipeline is closed")
        self.order.epoch = epoch
        size, mixing = self.settings.batch_size, generator(self.seed, epoch, MIXING)
        window = max(1, self.settings.queue_length // self.settings.samples_per_volume)
        pending: list[tuple[Patches, int]] = []  # (its box's patches, row), mixed
        for groups in _chunks(iter(self.loader), window):
            rows = [(group, row) for group in groups for row in range(len(group[INPUT]))]
            pending += [rows[i] for i in torch.randperm(len(rows), generator=mixing).tolist()]
            while len(pending) >= size:
                yield self._batch(pending[:size])
                pending = pending[size:]
        if pending:
            yield self._batch(pending)

    def _batch(self, rows: Sequence[tuple[Patches, int]]) -> dict[str, Any]:
        patches = {key: torch.stack([group[key][row] for group, row in rows]) for key in rows[0][0]}
        channels = patches[INPUT]
        batch: dict[str, Any] = {
            key: {tio.DATA: channels[:, i : i + 1]} for i, key in enumerate(self.spec.channel_keys)
        }
        batch[LABEL_KEY] = {tio.DATA: patches[LABEL_KEY]}
        batch[tio.LOCATION] = patches[tio.LOCATION]
        if ANNOTATED_KEY in patches:
            batch[ANNOTATED_KEY] = patches[ANNOTATED_KEY]
        return batch

    def close(self) -> None:
        """End the data workers (the loader's persistent iterator goes with the loader)."""
        self.loader = None

    def __enter__(self) -> PatchPipeline:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _chunks(groups: Iterator[Patches], size: int) -> Iterator[list[Patches]]:
    while chunk := list(islice(groups, size)):
        yield chunk
