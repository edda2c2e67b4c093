"""What a training run reads: the dataset, its labels, patches and subject-level splits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sn_platform.data.bids_filter import NO_FILTER, BidsFilter
from sn_platform.data.channels import MEGRE_ECHOES, check_channels
from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.errors import folder_name

# patches: drawn by index by persistent workers (``data.patches``); queue: TorchIO's queue.
PIPELINES = ("patches", "queue")


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
    """A BIDS dataset, the labels trained on, and how patches are drawn from it.

    Parameters
    ----------
    root : BIDS dataset folder (None until given)
    label_source : derivatives folder of the training target (``manual`` = rater 1)
    labels : the labels trained on, in class order: one label (``[SN]``) trains a binary
        (sigmoid) network; several (``[SN, RN, CC]``) a softmax over background (class 0)
        and each label (class 1, 2, ...), so the model localises the RN and CC itself
    channels : the images the network reads (``sn_platform.data.channels``), the same as
        ``preprocessing.channels`` (the config interpolates one from the other)
    patch_size : patch (voxels) of the preprocessed volume, (X, Y, Z)
    pipeline : ``patches`` (each epoch's patches drawn by index by data workers that live
        as long as the run, ``data.patches``) or ``queue`` (TorchIO's queue, whose workers
        start again every epoch; kept to compare against)
    samples_per_volume : patches per subject per epoch, all from one augmentation of its box
    queue_length : patches mixed before they are batched
    batch_size : patches per batch
    num_workers : data worker processes (0: patches are drawn in the training process)
    label_probabilities : class (0 background, i the i-th label) -> probability of a
        patch centred on it
    preprocessing : the preprocessing spec, shared by training and inference
    splits : the saved subject-level split
    partial_labels : a subject may carry any non-empty subset of ``labels`` (SN only, say);
        a label it lacks does not count in its loss (``models.losses.marginal_logits``)
        instead of being taken for background. False: every subject needs every label
    pseudo_label_source : with ``partial_labels``, a derivatives folder of a teacher
        model's masks (``sn-infer output=ROOT/derivatives/NAME``): a label a training
        subject lacks in ``label_source`` is taken from it (self-training); validation and
        test subjects are scored on ``label_source`` alone. None: no teacher
    bids_filter : which file each channel is where several fit: channel (or ``MEGRE``, every
        echo) -> entity -> value, e.g. ``{MEGRE: {run: 2}}`` (``data.bids_filter``)
    """

    root: str | None
    preprocessing: PreprocessingSpec
    splits: SplitSettings
    label_source: str = "manual"
    labels: tuple[str, ...] = ("SN",)
    channels: tuple[str, ...] = MEGRE_ECHOES
    patch_size: tuple[int, int, int] = (64, 64, 3)
    pipeline: str = "patches"
    samples_per_volume: int = 8
    queue_length: int = 64
    batch_size: int = 4
    num_workers: int = 0
    label_probabilities: Mapping[int, float] = field(default_factory=lambda: {0: 0.5, 1: 0.5})
    partial_labels: bool = False
    pseudo_label_source: str | None = None
    bids_filter: BidsFilter = NO_FILTER

    def __post_init__(self) -> None:
        folder_name("data.label_source", self.label_source)
        if self.pseudo_label_source is not None:
            folder_name("data.pseudo_label_source", self.pseudo_label_source)
            if not self.partial_labels:
                raise ValueError(
                    "pseudo_label_source fills the labels partial_labels lets a subject "
                    "lack; set data.partial_labels=true"
                )
            if self.pseudo_label_source == self.label_source:
                raise ValueError(
                    f"pseudo_label_source and label_source are both {self.label_source!r}"
                )
        object.__setattr__(self, "patch_size", tuple(int(n) for n in self.patch_size))
        object.__setattr__(self, "labels", tuple(str(name) for name in self.labels))
        object.__setattr__(self, "channels", check_channels(self.channels))
        if not isinstance(self.bids_filter, BidsFilter):
            queries = {} if self.bids_filter is None else self.bids_filter
            object.__setattr__(self, "bids_filter", BidsFilter(queries))
        if self.channels != self.preprocessing.channels:
            raise ValueError(
                f"data.channels {list(self.channels)} and data.preprocessing.channels "
                f"{list(self.preprocessing.channels)} differ; set data.channels only"
            )
        probabilities = {int(k): float(v) for k, v in self.label_probabilities.items()}
        object.__setattr__(self, "label_probabilities", probabilities)
        if not self.labels or len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels must be distinct label names, got {list(self.labels)}")
        unknown = sorted(set(probabilities) - set(range(len(self.labels) + 1)))
        if unknown:
            raise ValueError(
                f"label_probabilities: classes {unknown} not in 0..{len(self.labels)} "
                f"(0 background, then {list(self.labels)})"
            )
        for name in ("samples_per_volume", "batch_size", "queue_length"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.pipeline not in PIPELINES:
            raise ValueError(f"pipeline must be one of {PIPELINES}, got {self.pipeline!r}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if len(self.patch_size) != 3 or min(self.patch_size) < 1:
            raise ValueError(f"patch_size must be three positive sizes, got {self.patch_size}")
