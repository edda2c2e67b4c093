"""From a multi-structure prediction to what the measures need: post-processed SN, RN and
CC masks and the method's slab, placed below the RN (or, when asked and available, below
the manual one).

With a registered atlas of the nuclei (``localiser=atlas``), the network and the atlas
form a consensus per structure and side: where the network found nothing, or put its
structure further than a tolerance from the atlas's, the atlas's structure is used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sn_platform.data.roi import mask_centre
from sn_platform.data.slab import Slab
from sn_platform.inference.atlas import AtlasStructures
from sn_platform.inference.postprocess import keep_largest_component_per_hemisphere
from sn_platform.inference.predictor import InferenceSettings, NativePrediction

SLAB_SOURCES = ("predicted", "manual")


@dataclass(frozen=True)
class Localisation:
    """What was found in one subject, on its native grid.

    ``masks`` label name -> (X, Y, Z) bool, every label of the model (the consensus with
    the atlas where one was given); ``from_atlas`` the structures taken from the atlas, as
    ``"<label> <side>"`` (``"RN left"``); ``slab`` the slab the measures use;
    ``slab_source`` ``predicted``, ``manual`` or ``atlas`` (below an RN of which at least
    one side came from the atlas); ``predicted_slab`` the slab below the network's own RN
    (empty when it found none).
    """

    masks: dict[str, NDArray[np.bool_]]
    slab: Slab
    slab_source: str
    predicted_slab: Slab
    from_atlas: tuple[str, ...] = ()


def atlas_consensus(
    masks: Mapping[str, NDArray[np.bool_]],
    atlas: AtlasStructures,
    affine: NDArray[np.float64],
    tolerance_mm: float,
) -> tuple[dict[str, NDArray[np.bool_]], tuple[str, ...]]:
    """The network's ``masks`` (label -> (X, Y, Z) bool) with, per label and side, the
    atlas's structure in place of the network's where the network's is empty or its
    centroid lies more than ``tolerance_mm`` (mm) from the atlas's; and the replaced
    ``"<label> <side>"`` names. Sides are the atlas's (``atlas.right``); labels the atlas
    lacks, and sides where the atlas's structure is outside the grid, stay the network's."""
    agreed = dict(masks)
    replaced = []
    for label, reference in atlas.masks.items():
        if label not in agreed:
            continue
        for side_name, side in (("left", ~atlas.right), ("right", atlas.right)):
            expected = mask_centre(reference & side, affine)
            if expected is None:
                continue
            found = mask_centre(agreed[label] & side, affine)
            if found is None or np.linalg.norm(found - expected) > tolerance_mm:
                agreed[label] = (agreed[label] & ~side) | (reference & side)
                replaced.append(f"{label} {side_name}")
    return agreed, tuple(replaced)


def localise(
    prediction: NativePrediction,
    settings: InferenceSettings,
    keep_largest: bool = True,
    manual: Mapping[str, NDArray[np.bool_]] | None = None,
    slab_from: str = "predicted",
    atlas: Callable[[], AtlasStructures | None] | None = None,
    atlas_tolerance_mm: float | None = 6.0,
) -> Localisation:
    """Threshold every label, keep its largest component per hemisphere (``keep_largest``),
    and place the slab below the RN; with ``slab_from="manual"`` and a manual RN in
    ``manual``, below the manual RN instead.

    ``atlas`` (when given: the registered atlas's structures on the same grid, or None when
    registration failed) makes the masks the consensus of ``atlas_consensus`` with
    ``atlas_tolerance_mm`` (mm; None: the network's masks alone). A model without an RN
    label, or an RN found neither by the network nor the atlas, gives an empty slab.
    """
    if slab_from not in SLAB_SOURCES:
        raise ValueError(f"slab_from must be one of {SLAB_SOURCES}, got {slab_from!r}")
    masks = {}
    for label in prediction.labels:
        mask = prediction.mask(settings.threshold, label)
        masks[label] = (
            keep_largest_component_per_hemisphere(mask, prediction.affine) if keep_largest else mask
        )
    rule = settings.slab_rule
    empty = {rule.reference: np.zeros(prediction.field_of_view.shape, dtype=bool)}
    predicted = rule.place(empty | masks, prediction.affine)
    assert predicted is not None  # the reference is always in the mapping above
    manual_slab = rule.place(manual or {}, prediction.affine)
    if slab_from == "manual" and manual_slab is not None:
        return Localisation(masks, manual_slab, "manual", predicted)
    if atlas is None or atlas_tolerance_mm is None or (structures := atlas()) is None:
        return Localisation(masks, predicted, "predicted", predicted)
    agreed, replaced = atlas_consensus(masks, structures, prediction.affine, atlas_tolerance_mm)
    slab = rule.place(empty | agreed, prediction.affine)
    assert slab is not None
    source = (
        "atlas" if any(name.startswith(f"{rule.reference} ") for name in replaced) else "predicted"
    )
    return Localisation(agreed, slab, source, predicted, replaced)
