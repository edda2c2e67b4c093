"""Quality control of one prediction: the reasons it is doubtful, or ``ok``."""

from __future__ import annotations

import math
from typing import Any

from sn_platform.inference.localise import Localisation
from sn_platform.inference.options import QualityLimits
from sn_platform.inference.predictor import InferenceSettings, NativePrediction


def qc_flag(
    row: dict[str, Any],
    prediction: NativePrediction,
    found: Localisation,
    settings: InferenceSettings,
    limits: QualityLimits,
    reference_region: str = "CC",
) -> str:
    """``ok``, or the reasons a prediction is doubtful, separated by ``; ``.

    ``row`` is the subject's row of ``evaluate_case`` (volumes in mm^3);
    ``reference_region`` the NM reference label (CC), flagged when empty in the slab. The SN checks
    concern the SN inside the slab, so they are skipped when no slab could be placed.
    """
    reasons = []
    if "centre" in prediction.roi_source.split("+"):
        reasons.append("localiser found nothing (box at the volume centre)")
    reference = settings.slab_reference
    rn = found.masks.get(reference)
    if found.from_atlas:
        reasons.append(
            f"{', '.join(found.from_atlas)} from the registered atlas "
            "(the network's missing or off the atlas's)"
        )
    # An RN from the atlas has its reason above, and the atlas's volume.
    atlas_rn = found.slab_source == "atlas"
    if not found.predicted_slab.found and not atlas_rn:
        reasons.append(f"{reference} not found")
    elif rn is not None and not atlas_rn:
        rn_volume = float(row[f"{reference.lower()}_volume_mm3"])
        low, high = limits.rn_volume_range_mm3
        if not low <= rn_volume <= high:
            reasons.append(
                f"implausible {reference} volume {rn_volume:.0f} mm^3 "
                f"(expected {low:.0f}-{high:.0f})"
            )
    if found.slab.touches_edge:
        reasons.append("slab touches the volume edge")
    region = found.masks.get(reference_region)
    if region is not None and not (region & found.slab.mask).any():
        reasons.append(f"{reference_region} empty in the slab")
    if found.slab.found:
        mask = found.masks["SN"] & found.slab.mask
        volume = float(row["sn_volume_mm3"])
        low, high = limits.volume_range_mm3
        if not mask.any():
            reasons.append("empty mask")
        elif not low <= volume <= high:
            reasons.append(f"implausible volume {volume:.0f} mm^3 (expected {low:.0f}-{high:.0f})")
        if mask.any():
            confidence = float(prediction.probability("SN")[mask].mean())
            if confidence < limits.min_confidence:
                reasons.append(f"low mean confidence {confidence:.2f}")
        if mask.any() and min(row["sn_volume_left_mm3"], row["sn_volume_right_mm3"]) == 0:
            reasons.append("SN found on one side only")
    if math.isfinite(prediction.tta_dice) and prediction.tta_dice < limits.min_tta_dice:
        reasons.append(f"TTA passes disagree (Dice {prediction.tta_dice:.2f})")
    return "; ".join(reasons) or "ok"
