"""The NM volume ratio against a reference region (the crus cerebri) in the same slab."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sn_platform.evaluation.measures import nm_volume_ratio
from sn_platform.evaluation.reference import roi_measures
from sn_platform.evaluation.settings import MeasureSettings


def _volume() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    shape = (10, 10, 6)
    echo1 = np.full(shape, 100.0)
    slab = np.zeros(shape, bool)
    slab[..., 2:5] = True
    crus = np.zeros(shape, bool)
    crus[0:2] = True
    echo1[0, ...] = 90.0  # the crus in the slab: 30 voxels at 90, 30 at 110
    echo1[1, ...] = 110.0
    echo1[0:2, :, 5] = 1000.0  # outside the slab: must not count
    roi = np.zeros(shape, bool)
    roi[5:8, 0:4, 2:5] = True  # 36 voxels in the slab
    echo1[5, 0:4, 2:4] = 200.0  # 8 voxels above mean + 3 SD (130.25)
    echo1[6, 0:4, 2] = 120.0  # 4 voxels above mean + 1 SD (110.08) only
    return echo1, roi, crus, slab


def test_the_ratio_uses_the_crus_inside_the_slab():
    echo1, roi, crus, slab = _volume()
    sd = 10.0 * math.sqrt(60 / 59)  # 30 voxels at 90 and 30 at 110, ddof = 1
    assert 100 + sd < 120 < 100 + 3 * sd < 200
    values = roi_measures(echo1, None, roi, crus, slab, MeasureSettings())
    assert values["nm_volume_ratio"] == pytest.approx(8 / 12)
    assert math.isnan(values["chi_mean_ppm"])  # no QSM map


def test_the_roi_reading_and_a_missing_reference():
    echo1, roi, crus, slab = _volume()
    own = roi_measures(echo1, None, roi, crus, slab, MeasureSettings(nm_reference="roi"))
    assert own["nm_volume_ratio"] == pytest.approx(nm_volume_ratio(echo1, roi & slab))
    assert own["nm_volume_ratio"] != pytest.approx(8 / 12)
    missing = roi_measures(echo1, None, roi, None, slab, MeasureSettings())
    assert math.isnan(missing["nm_volume_ratio"])
    with pytest.raises(ValueError, match="nm_reference"):
        MeasureSettings(nm_reference="WM")
