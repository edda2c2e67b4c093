"""Phantom-test fixtures: every configured site's slab, on coarse in-plane voxels."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sn_platform.phantom.plan import SubjectPlan
from sn_platform.phantom.settings import PhantomConfig, SiteProtocol
from sn_platform.phantom.writer import generate_cohort

# In-plane voxel (mm) of the coarse cohorts: each site's field of view, slices,
# orientation and echoes, at a twentieth of the voxels of site A.
COARSE_IN_PLANE_MM = 2.0


@pytest.fixture(scope="session")
def configured_sites() -> dict[str, SiteProtocol]:
    """The whole-head multi-echo sites (A, B, C, Q) as ``conf/phantom.yaml`` defines them."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from sn_platform.composition import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="phantom")
    sites = {name: instantiate(node, _convert_="all") for name, node in cfg.site_catalog.items()}
    return {
        name: site
        for name, site in sites.items()
        if site.images == "megre" and not site.partial_brain
    }


@pytest.fixture(scope="session")
def coarse_site_cohorts(
    tmp_path_factory: pytest.TempPathFactory, configured_sites: dict[str, SiteProtocol]
) -> dict[str, tuple[Path, list[SubjectPlan]]]:
    """Two subjects (HC, PD) per configured site, default head and offsets, 2 mm in-plane."""
    cohorts = {}
    for seed, (name, site) in enumerate(configured_sites.items(), start=21):
        coarse = replace(site, voxel_mm=(COARSE_IN_PLANE_MM, COARSE_IN_PLANE_MM, site.voxel_mm[2]))
        root = tmp_path_factory.mktemp(f"coarse_{name}")
        plans = generate_cohort(root, PhantomConfig(subjects=2, seed=seed, sites=(coarse,)))
        cohorts[name] = (root, plans)
    return cohorts
