"""The subjects of one run: discovered, validated and split by the saved fold file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from sn_platform.data.bids import (
    DataValidationError,
    SubjectRecord,
    discover_subjects,
    label_near_miss,
    label_path,
    validate_subject,
    with_labels_from,
)
from sn_platform.data.settings import DataSettings
from sn_platform.data.splits import Splits, load_or_create_splits


@dataclass
class SubjectSplit:
    """The records of one run: training, validation (may be empty) and test subjects."""

    train: list[SubjectRecord]
    validation: list[SubjectRecord]
    test: list[SubjectRecord]
    splits: Splits

    @property
    def all(self) -> list[SubjectRecord]:
        """Every record of the run."""
        return [*self.train, *self.validation, *self.test]


def split_subjects(data: DataSettings, fold: int | None, tissues: bool = False) -> SubjectSplit:
    """Discover and validate the dataset; pick the subjects of ``fold`` (None: all
    development subjects train, none validate). The splits are of participants: each
    session of a participant (``SubjectRecord.session``) goes where the participant goes.
    With ``tissues`` every subject must have its tissue label map (the augmentation renders
    images from it). With
    ``data.partial_labels`` a subject needs only one of ``data.labels``; with
    ``data.pseudo_label_source`` a training subject's missing labels come from that folder
    (validation and test subjects keep ``data.label_source``'s alone)."""
    spec = data.preprocessing
    root = Path(str(data.root))
    records = discover_subjects(
        root,
        channels=spec.channels,
        label_source=data.label_source,
        labels=() if data.partial_labels else data.labels,
        optional_labels=data.labels if data.partial_labels else (),
        tissues=tissues,
        bids_filter=data.bids_filter,
    )
    for record in records:
        validate_subject(record)
        if not record.labels:
            near = [
                label_near_miss(root, data.label_source, record.scan, name, record.grid_image)
                for name in data.labels
            ]
            path = label_path(root, data.label_source, record.scan, data.labels[0])
            raise DataValidationError(
                path.parent,
                f"none of the labels {list(data.labels)}" + "".join(f"; {n}" for n in near if n),
            )
    splits = load_or_create_splits(
        data.splits.file,
        {r.participant_id: r.group or "n/a" for r in records},
        data.splits.folds,
        data.splits.seed,
        data.splits.test_fraction,
    )
    if fold is None:
        train_ids, validation_ids = splits.development, list[str]()
    else:
        train_ids, validation_ids = splits.fold(fold)
    train = scans_of(records, train_ids)
    if data.pseudo_label_source is not None:
        taught = [with_labels_from(r, root, data.pseudo_label_source, data.labels) for r in train]
        for record, original in zip(taught, train, strict=True):
            if record is not original:  # a teacher's mask was added
                validate_subject(record)
        train = taught
    return SubjectSplit(
        train=train,
        validation=scans_of(records, validation_ids),
        test=scans_of(records, splits.test),
        splits=splits,
    )


def scans_of(
    records: Sequence[SubjectRecord], participant_ids: Sequence[str]
) -> list[SubjectRecord]:
    """The records of ``participant_ids``, each participant's sessions together, in the
    order of ``participant_ids``."""
    return [
        r
        for participant_id in participant_ids
        for r in records
        if r.participant_id == participant_id
    ]


def training_label_counts(
    records: Sequence[SubjectRecord], labels: Sequence[str], pseudo_label_source: str | None
) -> str:
    """How many of ``records`` carry each label, and how many of those labels a teacher
    wrote: ``SN 32, RN 32 (16 pseudo), CC 32 (16 pseudo)``."""
    counts = []
    for name in labels:
        paths = [r.labels[name] for r in records if name in r.labels]
        pseudo = sum(_in_source(path, pseudo_label_source) for path in paths)
        counts.append(f"{name} {len(paths)}" + (f" ({pseudo} pseudo)" if pseudo else ""))
    return ", ".join(counts)


def drawn_labels(record: SubjectRecord, pseudo_label_source: str | None) -> dict[str, Path]:
    """The record's labels that were drawn: those not from ``derivatives/<pseudo_label_source>``."""
    return {
        name: path
        for name, path in record.labels.items()
        if not _in_source(path, pseudo_label_source)
    }


def _in_source(path: Path, source: str | None) -> bool:
    """Whether ``path`` lies in ``derivatives/<source>``."""
    parts = path.parts
    return source is not None and any(
        a == "derivatives" and b == source for a, b in pairwise(parts)
    )


def truth_label_paths(
    root: Path, records: Sequence[SubjectRecord], labels: Sequence[str]
) -> dict[str, dict[str, Path]]:
    """Truth labels (``derivatives/truth``, phantom data): scan id -> label -> file, for
    the labels that exist."""
    paths = {
        r.scan: {name: label_path(root, "truth", r.scan, name) for name in labels} for r in records
    }
    return {k: {name: p for name, p in v.items() if p.exists()} for k, v in paths.items()}
