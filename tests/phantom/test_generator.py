"""The phantom's physics and anatomy, measured on generated subjects (PHANTOM.md)."""

from __future__ import annotations

import hashlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from threadpoolctl import threadpool_info

from sn_platform.data.bids import echo_path, label_path
from sn_platform.evaluation.metrics import dice
from sn_platform.phantom.generator import sample_subject_plan, simulate_subject
from sn_platform.phantom.raters import in_plane_distance_mm
from sn_platform.phantom.settings import PhantomConfig, SiteProtocol
from sn_platform.phantom.summary import fitted_r2star_per_s
from sn_platform.phantom.writer import generate_cohort, one_thread_each, remove_earlier_cohort

# The default 220 x 220 x 40 mm slab on 2 mm in-plane voxels: the whole code path, fast.
COARSE_SITE = SiteProtocol(voxel_mm=(2.0, 2.0, 1.0))


def _load(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj)


def _truth(root: Path, sub: str, name: str) -> np.ndarray:
    return _load(label_path(root, "truth", sub, name)).astype(bool)


def _echoes(root: Path, sub: str) -> list[np.ndarray]:
    return [_load(echo_path(root, sub, n)).astype(float) for n in range(1, 6)]


def _core(mask: np.ndarray) -> np.ndarray:
    """Interior voxels, away from partial volume (in-plane erosion)."""
    return ndimage.binary_erosion(mask, structure=np.ones((3, 3, 1), bool))


def test_groups_are_balanced_and_written(phantom_cohort):
    root, plans = phantom_cohort
    assert [p.group for p in plans] == ["HC", "PD", "HC", "PD"]
    rows = (root / "participants.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["participant_id", "group", "age", "sex", "site"]
    assert [r.split("\t")[1] for r in rows[1:]] == ["HC", "PD", "HC", "PD"]


def test_files_share_one_affine_and_open_with_nibabel(phantom_cohort):
    root, _ = phantom_cohort
    files = sorted(root.rglob("sub-001*.nii.gz"))
    # Echoes, QSM, truth (SN, SNpc, N1, RN, CC, STN, tissue classes), each rater's SN,
    # RN and CC.
    assert len(files) == 5 + 1 + 7 + 3 + 3
    affines = [nib.load(f).affine for f in files]
    assert all(np.array_equal(a, affines[0]) for a in affines)
    assert nib.load(files[0]).shape == (272, 272, 40)  # 136 x 136 x 40 mm
    assert np.allclose(nib.load(files[0]).header.get_zooms(), (0.5, 0.5, 1.0))


@pytest.mark.parametrize("structure", ["SN", "RN"])
def test_echoes_decay_at_the_configured_r2star(phantom_cohort, structure):
    root, plans = phantom_cohort
    times = SiteProtocol().echo_times_ms
    for plan in plans:
        sub = plan.participant_id
        core = _core(_truth(root, sub, structure)) & ~ndimage.binary_dilation(
            _truth(root, sub, "N1"), iterations=2
        )
        means = np.array([e[core].mean() for e in _echoes(root, sub)])
        assert np.all(np.diff(means) < 0)
        expected = plan.tissue.sn_r2star if structure == "SN" else plan.tissue.rn_r2star
        assert fitted_r2star_per_s(means, times) == pytest.approx(expected, rel=0.12)


def test_nm_contrast_and_susceptibility_match_the_plan(phantom_cohort):
    root, plans = phantom_cohort
    for plan in plans:
        sub = plan.participant_id
        echo1 = _load(echo_path(root, sub, 1)).astype(float)
        chi = _load(root / f"sub-{sub}" / "anat" / f"sub-{sub}_Chimap.nii.gz")
        contrast = echo1[_truth(root, sub, "SNpc")].mean() / echo1[_truth(root, sub, "CC")].mean()
        assert contrast == pytest.approx(plan.tissue.snpc_contrast, abs=0.06)
        assert chi[_truth(root, sub, "SN")].mean() == pytest.approx(plan.tissue.sn_chi, abs=0.006)
        assert chi[_core(_truth(root, sub, "CC"))].mean() == pytest.approx(
            plan.tissue.crus_chi, abs=0.01
        )


def test_group_parameters_follow_phantom_md():
    config = PhantomConfig(subjects=400, seed=3)
    plans = [sample_subject_plan(config, i) for i in range(config.subjects)]
    by_group = {g: [p for p in plans if p.group == g] for g in ("HC", "PD")}

    def mean(group: str, attribute: str) -> float:
        return float(np.mean([getattr(p.tissue, attribute) for p in by_group[group]]))

    assert mean("HC", "snpc_contrast") == pytest.approx(1.24, abs=0.02)
    assert mean("PD", "snpc_contrast") == pytest.approx(1.15, abs=0.02)
    assert mean("HC", "sn_chi") == pytest.approx(0.098, abs=0.003)
    assert mean("PD", "sn_chi") == pytest.approx(0.126, abs=0.004)
    assert mean("PD", "sn_r2star") > mean("HC", "sn_r2star") + 2.0
    snpc = {
        g: np.mean([sum(s.snpc_volume_mm3 for s in p.sides.values()) / 2 for p in by_group[g]])
        for g in by_group
    }
    assert snpc["HC"] == pytest.approx(96, abs=4) and snpc["PD"] == pytest.approx(79, abs=4)
    # Overlapping groups: the better single feature still misclassifies many subjects.
    hc = np.array([p.tissue.snpc_contrast for p in by_group["HC"]])
    pd = np.array([p.tissue.snpc_contrast for p in by_group["PD"]])
    assert 0.6 < (hc.mean() - pd.mean()) / np.sqrt(0.5 * (hc.var() + pd.var())) < 1.4
    no_n1 = np.mean(
        [not any(s.nigrosome_present for s in p.sides.values()) for p in by_group["PD"]]
    )
    assert no_n1 == pytest.approx(0.40, abs=0.08)


def test_anatomy_sizes(phantom_cohort):
    root, plans = phantom_cohort
    voxel = 0.5 * 0.5 * 1.0
    for plan in plans:
        sn = _truth(root, plan.participant_id, "SN")
        per_side = sn.sum() * voxel / 2
        assert 250 < per_side < 520
        z = np.flatnonzero(sn.any(axis=(0, 1)))
        assert 11 <= z[-1] - z[0] + 1 <= 20  # craniocaudal extent (mm at 1 mm slices)
        rn_bottom = np.flatnonzero(_truth(root, plan.participant_id, "RN").any(axis=(0, 1)))[0]
        assert sn[:, :, rn_bottom - 3 : rn_bottom].sum() > 0.15 * sn.sum()


def test_nigrosome_is_brighter_than_sn_on_late_echoes(phantom_cohort):
    root, plans = phantom_cohort
    checked = 0
    for plan in plans:
        sub = plan.participant_id
        n1 = _truth(root, sub, "N1")
        if not n1.any():
            continue
        sn_rest = _truth(root, sub, "SN") & ~ndimage.binary_dilation(n1, iterations=2)
        echoes = _echoes(root, sub)
        for e in echoes[2:]:
            assert e[n1].mean() > 1.05 * e[sn_rest].mean()
        checked += 1
    assert checked >= 1


def test_manual_contains_truth_with_the_margin(phantom_cohort, phantom_config):
    root, plans = phantom_cohort
    scores = []
    for plan in plans:
        sub = plan.participant_id
        sn = _truth(root, sub, "SN")
        manual = _load(label_path(root, "manual", sub, "SN")).astype(bool)
        manual2 = _load(label_path(root, "manual2", sub, "SN")).astype(bool)
        assert np.all(manual[sn]) and np.all(manual2[sn])
        dilated = in_plane_distance_mm(sn, (0.5, 0.5, 1.0)) <= phantom_config.manual_margin_mm
        assert 0.9 < manual.sum() / dilated.sum() < 1.3
        assert manual.sum() > 1.2 * sn.sum()
        scores.append(dice(manual, manual2))
    assert 0.78 < np.mean(scores) < 0.9


def test_same_seed_gives_byte_identical_files(tmp_path):
    config = PhantomConfig(subjects=1, seed=5, sites=(COARSE_SITE,))
    digests = []
    for run in ("a", "b"):
        generate_cohort(tmp_path / run, config, n_jobs=1)
        files = sorted((tmp_path / run).rglob("*.nii.gz"))
        digests.append([hashlib.sha256(f.read_bytes()).hexdigest() for f in files])
    assert digests[0] == digests[1] and len(digests[0]) == 19
    other = simulate_subject(
        sample_subject_plan(replace(config, seed=6), 0), replace(config, seed=6)
    )
    first = _load(echo_path(tmp_path / "a", "001", 1))
    assert not np.array_equal(first, other.echoes[0])


def test_storage_orientation_changes_arrays_not_anatomy():
    ras = PhantomConfig(subjects=1, seed=2, sites=(COARSE_SITE,))
    pir = replace(ras, sites=(replace(COARSE_SITE, orientation="PIR"),))
    a = simulate_subject(sample_subject_plan(ras, 0), ras)
    b = simulate_subject(sample_subject_plan(pir, 0), pir)
    assert b.truth["SN"].shape == (110, 40, 110)
    canonical_a = nib.as_closest_canonical(nib.Nifti1Image(a.truth["SN"], a.affine))
    canonical_b = nib.as_closest_canonical(nib.Nifti1Image(b.truth["SN"], b.affine))
    assert np.array_equal(canonical_a.affine, canonical_b.affine)
    assert np.array_equal(np.asarray(canonical_a.dataobj), np.asarray(canonical_b.dataobj))


def _thread_counts() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info()]


def test_the_phantoms_pool_processes_run_one_blas_and_openmp_thread_each():
    with ProcessPoolExecutor(max_workers=2, initializer=one_thread_each) as pool:
        counts = pool.submit(_thread_counts).result()
    assert counts and set(counts) == {1}


def test_a_smaller_cohort_written_over_a_larger_one_leaves_none_of_it(tmp_path):
    root = tmp_path / "phantom"
    generate_cohort(root, PhantomConfig(subjects=3, seed=5, sites=(COARSE_SITE,)), n_jobs=1)
    (root / "splits_final.json").write_text("{}")  # what training saved for that cohort
    (root / "derivatives" / "sn-platform").mkdir()  # someone's outputs: left alone
    plans = generate_cohort(root, PhantomConfig(subjects=2, seed=6, sites=(COARSE_SITE,)), n_jobs=1)

    removed = remove_earlier_cohort(root, (plan.participant_id for plan in plans))

    assert removed == ["003"]
    assert sorted(p.name for p in root.glob("sub-*")) == ["sub-001", "sub-002"]
    for source in ("manual", "manual2", "truth"):
        assert sorted(p.name for p in (root / "derivatives" / source).glob("sub-*")) == [
            "sub-001",
            "sub-002",
        ]
    assert not (root / "splits_final.json").exists()
    assert (root / "derivatives" / "sn-platform").is_dir()
    assert remove_earlier_cohort(root, ["001", "002"]) == []
