"""Subject-level cross-validation folds, stratified by group, saved once and reused.

Like nnU-Net's ``splits_final.json``: a sweep, a refit and a later evaluation read the
same file, so no subject ever moves between training and validation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sn_platform.data.io import write_text
from sn_platform.errors import ConfigError


@dataclass(frozen=True)
class Splits:
    """A held-out test set and ``k`` folds of the remaining subjects."""

    test: tuple[str, ...]
    folds: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
    seed: int

    def fold(self, index: int) -> tuple[list[str], list[str]]:
        """Training and validation subject ids of fold ``index``."""
        if not 0 <= index < len(self.folds):
            raise ValueError(
                f"fold {index} does not exist; the splits have {len(self.folds)} folds"
            )
        train, validation = self.folds[index]
        return list(train), list(validation)

    @property
    def development(self) -> list[str]:
        """Every subject that is not in the test set (for a final refit)."""
        train, validation = self.folds[0]
        return sorted({*train, *validation})

    def to_json(self) -> str:
        """JSON text: ``{"seed", "test", "folds": [{"train", "val"}]}``."""
        folds = [{"train": list(t), "val": list(v)} for t, v in self.folds]
        return json.dumps({"seed": self.seed, "test": list(self.test), "folds": folds}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Splits:
        """Inverse of ``to_json``."""
        data = json.loads(text)
        folds = tuple((tuple(f["train"]), tuple(f["val"])) for f in data["folds"])
        return cls(test=tuple(data["test"]), folds=folds, seed=int(data["seed"]))


def stratified_splits(
    groups: Mapping[str, str], k: int, seed: int = 0, test_fraction: float = 0.0
) -> Splits:
    """Split subjects into a test set and ``k`` folds with the groups balanced in each.

    Parameters
    ----------
    groups : subject id -> group (HC, PD, ...)
    k : number of folds (>= 2)
    seed : random seed of the shuffle
    test_fraction : fraction of each group held out as the test set
    """
    if k < 2:
        raise ValueError(f"k must be >= 2 folds, got {k}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    test: list[str] = []
    fold_members: list[list[str]] = [[] for _ in range(k)]
    offset = 0
    for group in sorted(set(groups.values())):
        members = sorted(s for s, g in groups.items() if g == group)
        members = [members[i] for i in rng.permutation(len(members))]
        n_test = round(test_fraction * len(members))
        test += members[:n_test]
        # Continue the round-robin across groups so fold sizes differ by at most one.
        for position, subject in enumerate(members[n_test:]):
            fold_members[(offset + position) % k].append(subject)
        offset += len(members) - n_test
    development = sorted(s for members in fold_members for s in members)
    if len(development) < k:
        fixes = [f"data.splits.folds={len(development)}"] if len(development) >= 2 else []
        if test and len(groups) >= k:
            fixes.append("data.splits.test_fraction=0.0")
        raise ConfigError(
            f"data.splits.folds: {k} folds need {k} development subjects, but the test split "
            f"(test_fraction {test_fraction}) takes {len(test)} of the {len(groups)} subjects "
            f"and leaves {len(development)}; give {' or '.join(fixes) or 'more subjects'}"
        )
    folds = tuple(
        (tuple(sorted(set(development) - set(members))), tuple(sorted(members)))
        for members in fold_members
    )
    return Splits(test=tuple(sorted(test)), folds=folds, seed=seed)


def load_or_create_splits(
    path: Path | str, groups: Mapping[str, str], k: int, seed: int = 0, test_fraction: float = 0.0
) -> Splits:
    """Reuse the splits saved at ``path``, or create and save them.

    Raises
    ------
    ConfigError
        if too few subjects fill the folds, or the saved splits cover other subjects or
        another number of folds.
    """
    path = Path(path)
    if path.exists():
        splits = Splits.from_json(path.read_text())
        saved = set(splits.test) | set(splits.development)
        if saved != set(groups) or len(splits.folds) != k:
            raise ConfigError(
                f"data.splits.file: {path}: saved splits cover {len(saved)} subjects in "
                f"{len(splits.folds)} folds, "
                f"but the dataset has {len(groups)} subjects and {k} folds were asked; "
                "delete the file to re-split"
            )
        return splits
    splits = stratified_splits(groups, k, seed, test_fraction)
    write_text(path, splits.to_json())
    keep_out_of_bids(path)
    return splits


def keep_out_of_bids(path: Path) -> None:
    """List a file written at the top of a BIDS dataset (``dataset_description.json`` beside
    it) in the dataset's ``.bidsignore``, so the dataset stays valid for the BIDS validator."""
    root = path.parent
    if not (root / "dataset_description.json").exists():
        return
    ignore = root / ".bidsignore"
    listed = ignore.read_text().splitlines() if ignore.exists() else []
    if path.name not in listed:
        write_text(ignore, "\n".join([*listed, path.name]) + "\n")
