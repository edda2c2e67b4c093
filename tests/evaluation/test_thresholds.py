"""Per-label thresholds: the grid value with the best mean DSC, on constructed probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from sn_platform.evaluation.metrics import dice
from sn_platform.evaluation.thresholds import (
    THRESHOLD_GRID,
    calibrate_thresholds,
    dice_by_threshold,
)

SHAPE = (20, 4, 4)


def ramp() -> np.ndarray:
    """Probability 1 - (x + 0.5) / 20 along x (20, 4, 4): ``p > t`` holds on the first
    20 (1 - t) voxels (no voxel sits on a grid threshold)."""
    x = np.arange(SHAPE[0], dtype=np.float32)[:, None, None]
    return np.broadcast_to(1.0 - (x + 0.5) / 20.0, SHAPE).copy()


def slab(width: int) -> np.ndarray:
    """Reference mask of the first ``width`` voxels along x."""
    mask = np.zeros(SHAPE, dtype=bool)
    mask[:width] = True
    return mask


def test_each_label_gets_the_threshold_that_reproduces_its_drawn_extent():
    probabilities = {"SN": ramp(), "RN": ramp()}
    # SN drawn over x < 12: p > 0.4 exactly; RN over x < 8: p > 0.6 exactly.
    chosen = calibrate_thresholds([(probabilities, {"SN": slab(12), "RN": slab(8)})], ["SN", "RN"])
    assert chosen == {"SN": 0.4, "RN": 0.6}


def test_a_label_a_subject_lacks_does_not_count_for_it():
    drawn_both = {"SN": slab(12), "RN": slab(8)}
    # The second subject's RN probability would favour 0.2; its RN was not drawn.
    second = ({"SN": ramp(), "RN": np.full(SHAPE, 0.25, dtype=np.float32)}, {"SN": slab(12)})
    chosen = calibrate_thresholds(
        [({"SN": ramp(), "RN": ramp()}, drawn_both), second], ["SN", "RN", "CC"]
    )
    assert chosen == {"SN": 0.4, "RN": 0.6}  # CC drawn nowhere: no threshold of its own


def test_equal_scores_choose_the_threshold_nearest_one_half():
    confident = np.where(slab(6), 0.95, 0.02).astype(np.float32)
    assert calibrate_thresholds([({"SN": confident}, {"SN": slab(6)})], ["SN"]) == {"SN": 0.5}


def test_dice_in_the_box_equals_dice_over_the_whole_volume():
    rng = np.random.default_rng(0)
    probability = np.zeros((30, 30, 12), dtype=np.float32)
    probability[5:20, 8:25, 2:9] = rng.random((15, 17, 7))
    reference = np.zeros(probability.shape, dtype=bool)
    reference[10:22, 6:18, 3:11] = rng.random((12, 12, 8)) > 0.3
    expected = [dice(probability > t, reference) for t in THRESHOLD_GRID]
    assert dice_by_threshold(probability, reference, THRESHOLD_GRID) == pytest.approx(expected)


def test_both_empty_gives_nan_and_other_shapes_are_refused():
    empty = np.zeros(SHAPE, dtype=bool)
    assert np.isnan(dice_by_threshold(np.zeros(SHAPE), empty, THRESHOLD_GRID)).all()
    with pytest.raises(ValueError, match="differ in shape"):
        dice_by_threshold(np.zeros((2, 2, 2)), empty, THRESHOLD_GRID)
