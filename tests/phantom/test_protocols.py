"""The phantom's protocols: the single-echo NM-MRI slab (site N: one image, no QSM, a
midbrain slab) and every subject's protocol drawn around its site's (``variation=wide``)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from sn_platform.data.bids import channel_path, chimap_path, discover_subjects, label_path
from sn_platform.data.slab import SlabRule
from sn_platform.phantom.generator import sample_subject_plan
from sn_platform.phantom.plan import SubjectPlan
from sn_platform.phantom.settings import PhantomConfig, ProtocolVariation, SiteProtocol
from sn_platform.phantom.summary import cohort_figures, subject_figures
from sn_platform.phantom.writer import generate_cohort


@pytest.fixture(scope="module")
def nm_site() -> SiteProtocol:
    """Site N as ``conf/phantom.yaml`` defines it."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from sn_platform.composition import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="phantom")
    site: SiteProtocol = instantiate(cfg.site_catalog.N, _convert_="all")
    return site


@pytest.fixture(scope="module")
def nm_cohort(tmp_path_factory, nm_site) -> tuple[Path, list[SubjectPlan]]:
    """Two subjects of site N on 1.5 mm in-plane voxels (its slices and field of view)."""
    root = tmp_path_factory.mktemp("nm_slab")
    coarse = replace(nm_site, voxel_mm=(1.5, 1.5, nm_site.voxel_mm[2]))
    return root, generate_cohort(root, PhantomConfig(subjects=2, seed=41, sites=(coarse,)))


def test_site_n_is_the_published_nm_slab_geometry(nm_site):
    assert nm_site.shape == (240, 320, 12)
    assert tuple(nm_site.voxel_mm) == (0.75, 0.75, 2.2) and nm_site.images == "nm"


def test_an_nm_site_writes_one_nm_image_and_no_qsm(nm_cohort):
    root, plans = nm_cohort
    for plan in plans:
        sub = plan.participant_id
        files = sorted(p.name for p in (root / f"sub-{sub}" / "anat").iterdir())
        assert files == [f"sub-{sub}_acq-NM_T1w.json", f"sub-{sub}_acq-NM_T1w.nii.gz"]
        assert not chimap_path(root, sub).exists()
        sidecar = json.loads((root / f"sub-{sub}" / "anat" / files[0]).read_text())
        assert sidecar["SliceThickness"] == 2.2 and "EchoNumber" not in sidecar
    (record, _) = discover_subjects(root, channels=["NM"], label_source="truth")
    assert record.nm_image == channel_path(root, plans[0].participant_id, "NM")
    assert record.chimap is None


def test_the_slab_holds_the_sn_and_a_measurable_slab_below_the_rn(nm_cohort):
    root, plans = nm_cohort
    for plan in plans:
        sub = plan.participant_id
        image = nib.load(channel_path(root, sub, "NM"))
        nm = np.asarray(image.dataobj, dtype=float)
        truth = {
            name: np.asarray(nib.load(label_path(root, "truth", sub, name)).dataobj) > 0
            for name in ("SN", "SNpc", "RN", "CC")
        }
        slab = SlabRule(3.0).place(truth, image.affine)
        assert slab is not None and slab.found and not slab.touches_edge
        assert int(slab.mask.any(axis=(0, 1)).sum()) == 1  # 3 mm of 2.2 mm slices: one
        assert (truth["SN"] & slab.mask).sum() > 0
        contrast = nm[truth["SNpc"]].mean() / nm[truth["CC"]].mean()
        assert contrast == pytest.approx(plan.tissue.snpc_contrast, abs=0.1)


def test_the_summary_of_an_nm_slab_measures_what_it_has_and_leaves_chi_and_r2star_out(
    nm_cohort,
):
    root, plans = nm_cohort
    figures = subject_figures(root, plans[0].participant_id)
    sn = nib.load(label_path(root, "truth", plans[0].participant_id, "SN"))
    voxel_mm3 = float(np.prod(sn.header.get_zooms()))
    expected = (np.asarray(sn.dataobj) > 0).sum() * voxel_mm3 / 2
    assert figures["sn_volume_per_side_mm3"] == pytest.approx(expected)
    assert figures["nm_contrast_snpc_crus"] == pytest.approx(plans[0].tissue.snpc_contrast, abs=0.1)
    summary = cohort_figures(root)
    for name in ("chi_sn_ppm", "r2star_sn_per_s", "n1_minus_sn_late_echoes"):
        assert all(summary[group][name]["n"] == 0 for group in summary), name
    assert sum(summary[group]["rater_dsc"]["n"] for group in summary) == 2


def test_protocol_variation_draws_each_subject_s_protocol_within_its_ranges():
    variation = ProtocolVariation()
    plain = PhantomConfig(subjects=40, seed=5, sites=(SiteProtocol(),))
    varied = replace(plain, protocol_variation=variation)
    sites = []
    for index in range(plain.subjects):
        own, drawn = sample_subject_plan(plain, index), sample_subject_plan(varied, index)
        assert replace(drawn, site=own.site) == own  # only the protocol differs
        site = drawn.site
        assert site.voxel_mm[0] == site.voxel_mm[1]
        assert 0.5 <= site.voxel_mm[0] <= 0.8 and 0.8 <= site.voxel_mm[2] <= 1.6
        assert site.voxel_mm[2] <= site.slice_thickness_mm <= 1.6 * site.voxel_mm[2] + 0.01
        assert 40.0 - site.voxel_mm[2] <= site.fov_mm[2] <= 48.0 + site.voxel_mm[2]
        assert 4.0 <= site.first_echo_ms <= 9.0 and 5.0 <= site.echo_spacing_ms <= 9.0
        sites.append(site)
    assert len({s.voxel_mm for s in sites}) == 40 and len({s.orientation for s in sites}) == 4
    assert sample_subject_plan(varied, 3) == sample_subject_plan(varied, 3)


def test_a_variation_whose_thinnest_slab_cannot_hold_the_midbrain_is_refused(nm_site):
    thin = ProtocolVariation(fov_z_mm=(30.0, 40.0))
    with pytest.raises(ValueError, match="cannot hold the midbrain"):
        PhantomConfig(sites=(SiteProtocol(),), protocol_variation=thin)
    kept = PhantomConfig(subjects=1, sites=(nm_site,), protocol_variation=thin)
    assert sample_subject_plan(kept, 0).site == nm_site  # a partial-brain slab keeps its own
