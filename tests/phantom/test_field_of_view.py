"""The whole-head field of view: slab extent per site, air, midbrain placement (PHANTOM.md)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from sn_platform.data.bids import chimap_path, echo_path, label_path
from sn_platform.phantom.generator import sample_subject_plan
from sn_platform.phantom.plan import SubjectPlan
from sn_platform.phantom.settings import PhantomConfig, SiteProtocol

# Site: (orientation, voxel mm, slice thickness mm), as the brief and PHANTOM.md state them.
SITES = {
    "A": ("RAS", (0.5, 0.5, 1.0), 1.0),
    "B": ("LAS", (0.6, 0.6, 1.2), 1.2),
    "C": ("PIR", (0.55, 0.55, 1.0), 1.6),
    "Q": ("RAS", (0.8, 0.8, 0.8), 0.8),
}


def _canonical(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Array in RAS voxel order and its (4, 4) affine."""
    image = nib.as_closest_canonical(nib.load(path))
    return np.asarray(image.dataobj).astype(float), image.affine


def _world_axes(affine: np.ndarray, shape: tuple[int, ...]) -> list[np.ndarray]:
    """World coordinate (mm) of the voxel centres along each axis of a RAS array."""
    return [np.arange(n) * affine[k, k] + affine[k, 3] for k, n in enumerate(shape[:3])]


def _air_corners(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Voxels 40 % or more of the FOV from its centre along both x and y: always air.

    The largest head (76 x 98 mm half-axes to the scalp, default) shifted by the largest
    offset (15 mm) ends inside this corner region; the small test head in proportion.
    """
    x, y, _ = _world_axes(affine, shape)
    fov = [abs(affine[k, k]) * shape[k] for k in (0, 1)]
    corner = (np.abs(x)[:, None] >= 0.4 * fov[0]) & (np.abs(y)[None, :] >= 0.4 * fov[1])
    return np.broadcast_to(corner[:, :, None], shape[:3])


def test_every_site_stores_a_whole_head_slab(configured_sites, coarse_site_cohorts):
    for name, site in configured_sites.items():
        orientation, voxel_mm, thickness_mm = SITES[name]
        assert (site.orientation, tuple(site.voxel_mm), site.slice_thickness_mm) == (
            orientation,
            voxel_mm,
            thickness_mm,
        )
        extent_mm = np.asarray(site.shape) * np.asarray(site.voxel_mm)
        assert np.all(extent_mm >= (160.0, 160.0, 40.0)), name
        root, plans = coarse_site_cohorts[name]
        image = nib.load(echo_path(root, plans[0].participant_id, 1))
        assert nib.aff2axcodes(image.affine) == tuple(orientation)
        canonical = nib.as_closest_canonical(image)
        header_extent = np.asarray(canonical.shape) * np.asarray(canonical.header.get_zooms())
        assert header_extent == pytest.approx(extent_mm, abs=2.0)
        assert np.all(header_extent >= (160.0, 160.0, 40.0))


def _air_figures(root: Path, plan: SubjectPlan) -> tuple[list[float], float, float, float]:
    """Air mean / Rician floor per echo, QSM mean and SD in air (ppm), crus / air on echo 1."""
    sub = plan.participant_id
    echoes = [_canonical(echo_path(root, sub, n)) for n in range(1, 6)]
    air = _air_corners(echoes[0][1], echoes[0][0].shape)
    floor = plan.intensity_scale / plan.snr * np.sqrt(np.pi / 2.0)
    chi, _ = _canonical(chimap_path(root, sub))
    crus, _ = _canonical(label_path(root, "truth", sub, "CC"))
    echo1 = echoes[0][0]
    return (
        [float(echo[air].mean() / floor) for echo, _ in echoes],
        float(chi[air].mean()),
        float(chi[air].std()),
        float(echo1[crus > 0].mean() / echo1[air].mean()),
    )


def test_air_around_the_head_holds_rician_noise_only(phantom_cohort, coarse_site_cohorts):
    cohorts = [phantom_cohort, *coarse_site_cohorts.values()]
    for root, plans in cohorts:
        for plan in plans:
            floor_ratios, chi_mean, chi_sd, crus_over_air = _air_figures(root, plan)
            # Zero signal plus complex noise: Rayleigh, mean = sigma * sqrt(pi / 2).
            assert floor_ratios == pytest.approx([1.0] * 5, abs=0.05)
            assert crus_over_air > 15.0  # SNR 30-100 over a noise floor of 1.25 sigma
            assert abs(chi_mean) < 0.005
            # QSM noise SD 0.01 ppm, plus streaks (0.004 ppm times an envelope up to ~3x).
            assert 0.008 < chi_sd < 0.04


def test_midbrain_offsets_span_the_configured_range():
    config = PhantomConfig(subjects=300, seed=4)
    shifts = np.array([sample_subject_plan(config, i).pose.shift_mm for i in range(300)])
    limit = np.asarray(config.midbrain_offset_mm)
    assert limit.tolist() == [15.0, 15.0, 5.0]
    assert np.all(np.abs(shifts) <= limit)
    assert np.all(shifts.max(axis=0) > 0.9 * limit) and np.all(shifts.min(axis=0) < -0.9 * limit)


def _centroid_mm(root: Path, plan: SubjectPlan, labels: tuple[str, ...]) -> np.ndarray:
    """World centroid (mm) of the union of truth ``labels``."""
    masks = [_canonical(label_path(root, "truth", plan.participant_id, n)) for n in labels]
    union = np.any([mask > 0 for mask, _ in masks], axis=0)
    affine = masks[0][1]
    return np.asarray(affine[:3, :3] @ np.argwhere(union).mean(axis=0) + affine[:3, 3])


def test_truth_midbrain_is_off_centre_within_the_offset(coarse_site_cohorts):
    centroids, lowest_sn_mm = [], []
    for root, plans in coarse_site_cohorts.values():
        for plan in plans:
            centroid = _centroid_mm(root, plan, ("SN", "RN"))
            # The SN and RN lie within 6 mm of the SN centre, which is the sampled shift.
            assert np.all(np.abs(centroid - plan.pose.shift_mm) < 6.0)
            assert np.all(np.abs(centroid) <= np.array([15.0, 15.0, 5.0]) + 6.0)
            centroids.append(centroid)
            sn, affine = _canonical(label_path(root, "truth", plan.participant_id, "SN"))
            lowest_sn_mm.append(
                affine[2, 2] * np.flatnonzero(sn.any(axis=(0, 1)))[0] + affine[2, 3]
            )
    spread = np.ptp(np.array(centroids), axis=0)
    assert spread[0] > 5.0 and spread[1] > 5.0  # anywhere in-plane, not always centred
    assert np.ptp(lowest_sn_mm) >= 2.0  # the method's slab moves between subjects


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"sites": (SiteProtocol(fov_mm=(220.0, 220.0, 30.0)),)}, "site A: fov_mm z = 30 mm"),
        ({"sites": (SiteProtocol(fov_mm=(64.0, 220.0, 40.0)),)}, "site A: fov_mm x = 64 mm"),
        ({"head_scale": 0.3}, "head_scale must be in"),
    ],
)
def test_settings_that_cannot_hold_the_midbrain_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        PhantomConfig(**settings)
