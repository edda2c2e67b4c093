"""From a multi-structure prediction to what the measures need: post-processed SN, RN and
CC masks and the method's slab, placed below the predicted RN (or, when asked and
available, below the manual one)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sn_platform.data.slab import Slab, place_slab
from sn_platform.inference.postprocess import keep_largest_component_per_hemisphere
from sn_platform.inference.predictor import InferenceSettings, NativePrediction

SLAB_SOURCES = ("predicted", "manual")


@dataclass(frozen=True)
class Localisation:
    """What was found in one subject, on its native grid.

    ``masks`` label name -> (X, Y, Z) bool, every label of the model; ``slab`` the slab
    the measures use; ``slab_source`` ``predicted``, ``manual`` or ``atlas`` (below the
    registered template's RN, when the network found none); ``predicted_slab`` the slab
    below the predicted RN (empty when none was found).
    """

    masks: dict[str, NDArray[np.bool_]]
    slab: Slab
    slab_source: str
    predicted_slab: Slab


def localise(
    prediction: NativePrediction,
    settings: InferenceSettings,
    keep_largest: bool = True,
    manual: Mapping[str, NDArray[np.bool_]] | None = None,
    slab_from: str = "predicted",
    atlas_reference: Callable[[], NDArray[np.bool_] | None] | None = None,
) -> Localisation:
    """Threshold every label, keep its largest component per hemisphere (``keep_largest``),
    and place the slab below the predicted RN; with ``slab_from="manual"`` and a manual RN
    in ``manual``, below the manual RN instead.

    A model without an RN label, or an RN not found, gives an empty predicted slab; then
    ``atlas_reference`` (when given: the registered template's RN on the same grid, or
    None) places the slab, ``slab_source`` ``atlas``.
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
    empty = np.zeros(prediction.field_of_view.shape, dtype=bool)
    predicted = rule.place({rule.reference: empty} | masks, prediction.affine)
    assert predicted is not None  # the reference is always in the mapping above
    manual_slab = rule.place(manual or {}, prediction.affine)
    if slab_from == "manual" and manual_slab is not None:
        return Localisation(masks, manual_slab, "manual", predicted)
    if not predicted.found and atlas_reference is not None:
        reference = atlas_reference()
        if reference is not None:
            atlas = place_slab(reference, prediction.affine, rule.slices)
            return Localisation(masks, atlas, "atlas", predicted)
    return Localisation(masks, predicted, "predicted", predicted)
