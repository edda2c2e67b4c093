"""The subthalamic nucleus (the SN localiser's confounder) and the raters' three labels."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from sn_platform.data.bids import chimap_path, echo_path, label_path
from sn_platform.data.slab import slab_below
from sn_platform.evaluation.metrics import dice
from sn_platform.phantom.generator import RATER_LABELS, RATER_SOURCES
from sn_platform.phantom.plan import SubjectPlan
from sn_platform.phantom.summary import fitted_r2star_per_s


def _load(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj)


def _truth(root: Path, sub: str, name: str) -> np.ndarray:
    return _load(label_path(root, "truth", sub, name)).astype(bool)


def _anatomical_centroids(root: Path, plan: SubjectPlan, name: str) -> dict[float, np.ndarray]:
    """Centroid (mm) of each side (+1 right, -1 left) of a truth label, anatomical axes.

    Anatomical coordinates undo the pose: ``u = R^T (world - shift)``.
    """
    affine = nib.load(label_path(root, "truth", plan.participant_id, name)).affine
    voxels = np.argwhere(_truth(root, plan.participant_id, name))
    world = voxels @ affine[:3, :3].T + affine[:3, 3]
    u = (world - np.asarray(plan.pose.shift_mm)) @ plan.pose.rotation
    return {side: u[np.sign(u[:, 0]) == side].mean(axis=0) for side in (1.0, -1.0)}


def test_stn_is_iron_rich_like_the_sn(phantom_cohort):
    root, plans = phantom_cohort
    for plan in plans:
        sub = plan.participant_id
        stn, crus = _truth(root, sub, "STN"), _truth(root, sub, "CC")
        volume_per_side_mm3 = stn.sum() * 0.5 * 0.5 * 1.0 / 2
        assert 80.0 < volume_per_side_mm3 < 180.0  # a 10 x 4 x 6 mm lens: 126 mm^3
        chi = _load(chimap_path(root, sub))
        # The tissue's chi, less partial volume at the thin lens's edge and QSM noise.
        assert chi[stn].mean() == pytest.approx(plan.tissue.stn_chi, abs=0.015)
        assert 0.06 < chi[stn].mean() and chi[stn].mean() > chi[crus].mean() + 0.08
        echoes = [_load(echo_path(root, sub, n)).astype(float) for n in range(1, 6)]
        assert echoes[0][stn].mean() / echoes[0][crus].mean() == pytest.approx(1.0, abs=0.06)
        core = ndimage.binary_erosion(stn, structure=np.ones((3, 3, 1), bool))
        means = np.array([echo[core].mean() for echo in echoes])
        fitted = fitted_r2star_per_s(means, plan.site.echo_times_ms)
        assert fitted == pytest.approx(plan.tissue.stn_r2star, rel=0.08)
        assert 28.0 < fitted < 37.0


def test_stn_is_cranial_to_the_slab_and_dorsolateral(phantom_cohort):
    root, plans = phantom_cohort
    for plan in plans:
        sub = plan.participant_id
        stn, sn = _truth(root, sub, "STN"), _truth(root, sub, "SN")
        slab = slab_below(_truth(root, sub, "RN"), 3)
        assert len(slab) == 3 and not stn[:, :, slab].any()  # the method's slab misses it
        lowest = {
            name: np.flatnonzero(m.any(axis=(0, 1)))[0] for name, m in (("STN", stn), ("SN", sn))
        }
        assert lowest["STN"] >= lowest["SN"] + 6  # mm, at 1 mm slices
        assert lowest["STN"] > slab[-1]
        centroids = {n: _anatomical_centroids(root, plan, n) for n in ("STN", "RN", "SN")}
        for side in (1.0, -1.0):
            stn_x, stn_y = abs(centroids["STN"][side][0]), centroids["STN"][side][1]
            assert stn_x > abs(centroids["RN"][side][0]) + 2.5  # lateral to the RN
            assert stn_x > abs(centroids["SN"][side][0]) + 0.5  # and to the SN ...
            assert stn_y < centroids["SN"][side][1] - 3.0  # ... and dorsal to it


def test_both_raters_trace_sn_rn_and_cc(phantom_cohort):
    root, plans = phantom_cohort
    assert (RATER_SOURCES, RATER_LABELS) == (("manual", "manual2"), ("SN", "RN", "CC"))
    inter_rater = {label: [] for label in RATER_LABELS}
    for plan in plans:
        sub = plan.participant_id
        for label in RATER_LABELS:
            truth = _truth(root, sub, label)
            tracings = [_load(label_path(root, s, sub, label)).astype(bool) for s in RATER_SOURCES]
            for tracing in tracings:
                assert np.all(tracing[truth])  # a generous margin never cuts in
                assert 0.7 < dice(tracing, truth) < 0.92
            inter_rater[label].append(dice(*tracings))
    # Same error model for all three: margin, jitter SD 0.6-0.9 mm, 40 % shared.
    assert 0.80 < np.mean(inter_rater["SN"]) < 0.88
    assert 0.78 < np.mean(inter_rater["RN"]) < 0.90
    assert 0.80 < np.mean(inter_rater["CC"]) < 0.90
