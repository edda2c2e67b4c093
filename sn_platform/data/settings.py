"""What a training run reads: the dataset, its labels, patches and subject-level splits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.errors import folder_name


@dataclass(frozen=True)
class SplitSettings:
    """The saved subject-level split (``splits_final.json``) a run trains on.

    Parameters
    ----------
    file : where the split is saved once and reused
    folds : cross-validation folds of the development subjects (>= 2)
    test_fraction : fraction of each group held out as the test split, in [0, 1)
    seed : seed of the shuffle
    """

    file: str
    folds: int = 5
    test_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {self.folds}")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction}")


@dataclass(frozen=True)
class DataSettings:
    """A BIDS dataset, the label trained on, and how patches are drawn from it.

    Parameters
    ----------
    root : BIDS dataset folder (None until given)
    label_source : derivatives folder of the training target (``manual`` = rater 1)
    label : the label trained on (``SN``)
    patch_size : patch (voxels) of the preprocessed volume, (X, Y, Z)
    samples_per_volume, queue_length, batch_size, num_workers : TorchIO queue and loader
    label_probabilities : label value -> probability of a patch centred on it
    preprocessing : the preprocessing spec, shared by training and inference
    splits : the saved subject-level split
    """

    root: str | None
    preprocessing: PreprocessingSpec
    splits: SplitSettings
    label_source: str = "manual"
    label: str = "SN"
    patch_size: tuple[int, int, int] = (64, 64, 3)
    samples_per_volume: int = 8
    queue_length: int = 64
    batch_size: int = 4
    num_workers: int = 0
    label_probabilities: Mapping[int, float] = field(default_factory=lambda: {0: 0.5, 1: 0.5})

    def __post_init__(self) -> None:
        folder_name("data.label_source", self.label_source)
        object.__setattr__(self, "patch_size", tuple(int(n) for n in self.patch_size))
        probabilities = {int(k): float(v) for k, v in self.label_probabilities.items()}
        object.__setattr__(self, "label_probabilities", probabilities)
        for name in ("samples_per_volume", "batch_size", "queue_length"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if len(self.patch_size) != 3 or min(self.patch_size) < 1:
            raise ValueError(f"patch_size must be three positive sizes, got {self.patch_size}")
