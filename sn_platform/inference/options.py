"""The ``infer`` namespace of sn-infer as typed objects: model overrides (``None`` always
means the model's own), post-processing, QC limits, the engine, and one batch job."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sn_platform.data.bids_filter import NO_FILTER, BidsFilter
from sn_platform.errors import folder_name
from sn_platform.evaluation.settings import MeasureSettings
from sn_platform.inference.localise import SLAB_SOURCES
from sn_platform.inference.predictor import InferenceSettings

ENGINES = ("local", "ray")
# The model's inference settings that sn-infer may override; patch_size is the network's.
MODEL_OVERRIDES = ("threshold", "patch_overlap", "overlap_mode", "batch_size", "flip_tta")


@dataclass(frozen=True)
class QualityLimits:
    """When a prediction is flagged for review.

    Parameters
    ----------
    volume_range_mm3 : plausible SN volume (mm^3) of the predicted region in the slab
    rn_volume_range_mm3 : plausible volume (mm^3) of the predicted red nuclei (both sides)
    min_confidence : lowest acceptable mean probability inside the mask
    min_tta_dice : lowest acceptable Dice between the two TTA passes
    """

    volume_range_mm3: tuple[float, float] = (50.0, 2000.0)
    rn_volume_range_mm3: tuple[float, float] = (60.0, 1000.0)
    min_confidence: float = 0.75
    min_tta_dice: float = 0.8


@dataclass(frozen=True)
class RaySettings:
    """The Ray Data actor pool: ``address`` None starts a local Ray."""

    address: str | None = None
    num_actors: int = 2
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0


@dataclass(frozen=True)
class InferenceOptions:
    """What sn-infer does beyond the model's own settings.

    Parameters
    ----------
    threshold, patch_overlap, overlap_mode, batch_size, flip_tta : override the model's
        inference settings; None keeps the model's own. ``threshold`` applies to every
        label, replacing the thresholds the model's training calibrated per label
    label_thresholds : label -> threshold (``{RN: 0.3}``), over the model's per label (and
        over ``threshold``)
    keep_largest : keep the largest component per hemisphere (each label)
    slab_from : ``predicted`` (below the model's RN, the default) or ``manual`` (below the
        manual RN where ``derivatives/<label_source>`` has one, else the predicted)
    atlas_tolerance_mm : with a cascade whose first stage is the registered atlas
        (``localiser=atlas``), the distance (mm) between the network's and the atlas's
        centroid of a structure (per side) beyond which the atlas's is used; None: the
        network's masks alone
    overwrite : redo subjects whose outputs exist
    engine : ``local`` (this process) or ``ray`` (an actor pool, ``ray``)
    progress : show a progress bar (local engine)
    qc : QC limits
    ray : the Ray engine's actor pool
    """

    threshold: float | None = None
    patch_overlap: tuple[int, int, int] | None = None
    overlap_mode: str | None = None
    batch_size: int | None = None
    flip_tta: bool | None = None
    label_thresholds: dict[str, float] | None = None
    keep_largest: bool = True
    slab_from: str = "predicted"
    atlas_tolerance_mm: float | None = 6.0
    overwrite: bool = False
    engine: str = "local"
    progress: bool = True
    qc: QualityLimits = field(default_factory=QualityLimits)
    ray: RaySettings = field(default_factory=RaySettings)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.slab_from not in SLAB_SOURCES:
            raise ValueError(f"slab_from must be one of {SLAB_SOURCES}, got {self.slab_from!r}")
        if self.atlas_tolerance_mm is not None and not self.atlas_tolerance_mm > 0:
            raise ValueError(f"atlas_tolerance_mm must be > 0, got {self.atlas_tolerance_mm}")
        if self.patch_overlap is not None:
            object.__setattr__(self, "patch_overlap", tuple(int(n) for n in self.patch_overlap))
        # The model's settings check the values here; patch_overlap once the patch is known.
        given = {n: getattr(self, n) for n in MODEL_OVERRIDES if n != "patch_overlap"}
        replace(InferenceSettings(), **{n: v for n, v in given.items() if v is not None})
        if self.label_thresholds is not None:
            labels = tuple(str(name) for name in self.label_thresholds)
            checked = InferenceSettings(labels=labels, label_thresholds=self.label_thresholds)
            object.__setattr__(self, "label_thresholds", checked.label_thresholds)

    def settings(self, model_settings: InferenceSettings) -> InferenceSettings:
        """The model's inference settings with the overrides that are not None."""
        changes: dict[str, Any] = {
            name: getattr(self, name) for name in MODEL_OVERRIDES if getattr(self, name) is not None
        }
        label_thresholds = {} if self.threshold is not None else model_settings.label_thresholds
        changes["label_thresholds"] = label_thresholds | (self.label_thresholds or {})
        return replace(model_settings, **changes)


@dataclass(frozen=True)
class BatchJob:
    """One sn-infer run: a BIDS dataset in, a derivatives folder out, and how.

    ``label_source`` names the derivatives folder with manual labels (SN for DSC and
    agreement, RN for ``slab_from=manual`` and the slab offset, CC for the manual NM
    reference); None reads none. ``truth_source`` the derivatives folder of exact labels
    (phantom data: DSC and measures against truth, and the CC where no manual one exists);
    None reads none. ``measures`` says how the measures are taken. ``labels_root`` is
    the BIDS dataset whose ``derivatives/`` hold those labels when they are kept apart
    from the input (a copy without derivatives, as a new patient's); None: the input.
    ``bids_filter`` says which file each channel is where several fit
    (``sn_platform.data.bids_filter``).
    """

    root: Path
    output: Path
    options: InferenceOptions = field(default_factory=InferenceOptions)
    label_source: str | None = "manual"
    measures: MeasureSettings = field(default_factory=MeasureSettings)
    truth_source: str | None = "truth"
    labels_root: Path | None = None
    bids_filter: BidsFilter = NO_FILTER

    @property
    def reference_root(self) -> Path:
        """The dataset whose derivatives hold the manual and truth labels."""
        return self.labels_root if self.labels_root is not None else self.root

    def __post_init__(self) -> None:
        for key in ("label_source", "truth_source"):
            if getattr(self, key) is not None:
                folder_name(key, getattr(self, key))
