"""From a multi-structure prediction to what the measures need: post-processed SN, RN and
CC masks and the method's slab, placed below the RN (or, when asked and available, below
the manual one).

With a registered atlas of the nuclei (``localiser=atlas``), the network and the atlas
form a consensus per structure and side: the atlas first follows the network's structures
by one translation where most of them agree on it (``atlas_shift_mm``); then, where the
network found nothing, or put its structure further than a tolerance from the atlas's, the
atlas's structure is used.
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


# The atlas follows the network's structures by one translation when at least
# ``ALIGNMENT_MIN_SIDES`` of their sides (label and side) agree on it within
# ``ALIGNMENT_AGREEMENT_MM`` and it is shorter than ``ALIGNMENT_MAX_SHIFT_MM``: a
# registration a few mm off, measured on 2 of 40 held-out phantom subjects (about 6 mm).
ALIGNMENT_MIN_SIDES = 4
ALIGNMENT_AGREEMENT_MM = 2.5
ALIGNMENT_MAX_SHIFT_MM = 8.0


def _side_centres(
    masks: Mapping[str, NDArray[np.bool_]], right: NDArray[np.bool_], affine: NDArray[np.float64]
) -> dict[tuple[str, str], NDArray[np.float64]]:
    """(label, side) -> world centroid (mm) of every non-empty side of ``masks``."""
    centres = {}
    for label, mask in masks.items():
        for side_name, side in (("left", ~right), ("right", right)):
            centre = mask_centre(mask & side, affine)
            if centre is not None:
                centres[label, side_name] = centre
    return centres


def atlas_shift_mm(
    masks: Mapping[str, NDArray[np.bool_]], atlas: AtlasStructures, affine: NDArray[np.float64]
) -> NDArray[np.float64] | None:
    """The world translation (3,) mm from the atlas's structures to the network's
    ``masks``: the median of the per-side centroid offsets, when at least
    ``ALIGNMENT_MIN_SIDES`` offsets lie within ``ALIGNMENT_AGREEMENT_MM`` of it and it is
    shorter than ``ALIGNMENT_MAX_SHIFT_MM``; None otherwise (the network's structures do
    not agree on one)."""
    found = _side_centres(masks, atlas.right, affine)
    expected = _side_centres(atlas.masks, atlas.right, affine)
    offsets = np.asarray([found[k] - expected[k] for k in found.keys() & expected.keys()])
    if len(offsets) < ALIGNMENT_MIN_SIDES:
        return None
    shift = np.median(offsets, axis=0)
    agreeing = np.linalg.norm(offsets - shift, axis=1) <= ALIGNMENT_AGREEMENT_MM
    if agreeing.sum() < ALIGNMENT_MIN_SIDES or np.linalg.norm(shift) >= ALIGNMENT_MAX_SHIFT_MM:
        return None
    return shift


def shifted_atlas(
    atlas: AtlasStructures, shift_mm: NDArray[np.float64], affine: NDArray[np.float64]
) -> AtlasStructures:
    """``atlas`` moved by the world translation ``shift_mm`` (3,) mm on its grid
    (``affine``), to the nearest voxel: structures enter empty space, the sides extend."""
    voxels = np.rint(np.linalg.solve(affine[:3, :3], shift_mm)).astype(int)
    shape = atlas.right.shape
    sources = [np.arange(n) - v for v, n in zip(voxels, shape, strict=True)]
    clipped = np.ix_(*(np.clip(i, 0, n - 1) for i, n in zip(sources, shape, strict=True)))
    valid = [((i >= 0) & (i < n)).reshape([-1 if a == axis else 1 for a in range(3)])
             for axis, (i, n) in enumerate(zip(sources, shape, strict=True))]  # fmt: skip
    inside = valid[0] & valid[1] & valid[2]
    masks = {label: mask[clipped] & inside for label, mask in atlas.masks.items()}
    return AtlasStructures(masks, atlas.right[clipped])


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
    expected = _side_centres(atlas.masks, atlas.right, affine)
    found = _side_centres(masks, atlas.right, affine)
    agreed = dict(masks)
    replaced = []
    for (label, side_name), centre in expected.items():
        if label not in agreed:
            continue
        own = found.get((label, side_name))
        if own is None or np.linalg.norm(own - centre) > tolerance_mm:
            side = atlas.right if side_name == "right" else ~atlas.right
            agreed[label] = (agreed[label] & ~side) | (atlas.masks[label] & side)
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
        mask = prediction.mask(settings.threshold_of(label), label)
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
    shift = atlas_shift_mm(masks, structures, prediction.affine)
    if shift is not None:
        structures = shifted_atlas(structures, shift, prediction.affine)
    agreed, replaced = atlas_consensus(masks, structures, prediction.affine, atlas_tolerance_mm)
    slab = rule.place(empty | agreed, prediction.affine)
    assert slab is not None
    source = (
        "atlas" if any(name.startswith(f"{rule.reference} ") for name in replaced) else "predicted"
    )
    return Localisation(agreed, slab, source, predicted, replaced)
