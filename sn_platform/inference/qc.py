"""Quality control of one prediction: the reasons it is doubtful, or ``ok``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sn_platform.inference.options import QualityLimits
from sn_platform.inference.predictor import NativePrediction


def qc_flag(
    row: dict[str, Any], prediction: NativePrediction, mask: np.ndarray, limits: QualityLimits
) -> str:
    """``ok``, or the reasons a prediction is doubtful, separated by ``; ``."""
    reasons = []
    volume = float(row["sn_volume_mm3"])
    low, high = limits.volume_range_mm3
    if not mask.any():
        reasons.append("empty mask")
    elif not low <= volume <= high:
        reasons.append(f"implausible volume {volume:.0f} mm^3 (expected {low:.0f}-{high:.0f})")
    if mask.any():
        confidence = float(prediction.probability[mask].mean())
        if confidence < limits.min_confidence:
            reasons.append(f"low mean confidence {confidence:.2f}")
    if math.isfinite(prediction.tta_dice) and prediction.tta_dice < limits.min_tta_dice:
        reasons.append(f"TTA passes disagree (Dice {prediction.tta_dice:.2f})")
    if mask.any() and min(row["sn_volume_left_mm3"], row["sn_volume_right_mm3"]) == 0:
        reasons.append("SN found on one side only")
    return "; ".join(reasons) or "ok"
