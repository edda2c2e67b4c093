"""The atlas localiser: the MNI template registered to a subject finds its midbrain.

Known truth: the template itself, resampled at a known pose into a slab (a seed-protocol
slab and a thick-slice NM slab), must give back the pose's midbrain; a flat image cannot
be registered and says so (the box falls back to the volume's centre).
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from benchmarks.real_anatomy import Template, posed_image, world_of_mni, write_subject
from sn_platform.data.bids import SubjectRecord, echo_path
from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.data.templates import mni_template_path
from sn_platform.inference.atlas import (
    RED_NUCLEUS_MNI_MM,
    STRUCTURES_CENTRE_MNI_MM,
    AtlasLocaliser,
    ball_on_grid,
    craniocaudal_depth_mm,
    template_points_on,
)
from sn_platform.inference.predictor import preprocess_record
from sn_platform.phantom.regions import Pose
from sn_platform.phantom.settings import SiteProtocol

SLAB = SiteProtocol(name="S", voxel_mm=(1.0, 1.0, 1.0), fov_mm=(140.0, 140.0, 40.0),
                    slice_thickness_mm=1.0, orientation="LAS")  # fmt: skip
NM_SLAB = SiteProtocol(name="N", voxel_mm=(0.75, 0.75, 2.2), fov_mm=(150.0, 180.0, 26.4),
                       slice_thickness_mm=2.2, orientation="RAS")  # fmt: skip
POSE = Pose((4.0, -3.0, 8.0), (6.0, -9.0, 2.5), deformation_seed=0)


@pytest.fixture(scope="module")
def mni_t1() -> Template:
    image = cast(nib.Nifti1Image, nib.load(mni_template_path("t1")))
    return Template(np.asarray(image.dataobj, dtype=np.float32), np.asarray(image.affine))


def _posed_record(root: Path, template: Template, site: SiteProtocol) -> SubjectRecord:
    image = posed_image(template, site, POSE)
    write_subject(root, site.name, site, image, 1000.0 / float(image.max()))
    return SubjectRecord(site.name, (echo_path(root, site.name, 1),))


@pytest.fixture(scope="module")
def posed(mni_t1, tmp_path_factory) -> dict[str, SubjectRecord]:
    """The template at ``POSE`` in each slab, written once: registered once (cached)."""
    root = tmp_path_factory.mktemp("posed")
    return {site.name: _posed_record(root, mni_t1, site) for site in (SLAB, NM_SLAB)}


@pytest.mark.parametrize("site", [SLAB, NM_SLAB], ids=["seed-slab", "nm-slab"])
def test_the_posed_template_gives_back_its_midbrain(posed, site):
    record = posed[site.name]
    centre = AtlasLocaliser().locate(record)
    truth = world_of_mni(POSE, np.asarray(STRUCTURES_CENTRE_MNI_MM))
    assert centre is not None
    assert np.linalg.norm(centre - truth) < 1.0  # mm: the template registered to itself


def test_every_structure_maps_where_the_pose_puts_it(posed):
    record = posed[SLAB.name]
    points = np.array([[-10.0, -18.0, -15.0], [5.5, -18.0, -10.0], [0.0, -40.0, -5.0]])
    mapped = template_points_on(record.echoes[0], points)
    assert mapped is not None
    np.testing.assert_allclose(mapped, world_of_mni(POSE, points), atol=1.0)


def test_a_flat_image_is_not_registered_and_the_box_goes_to_the_centre(tmp_path):
    path = tmp_path / "flat.nii.gz"
    nib.nifti1.save(nib.Nifti1Image(np.full((40, 40, 20), 100.0, np.float32), np.eye(4)), path)
    record = SubjectRecord("flat", (path,))
    assert AtlasLocaliser().locate(record) is None
    spec = PreprocessingSpec(echoes=(1,), spacing_mm=(1.0, 1.0, 1.0), roi_mm=(16.0, 16.0, 8.0))
    assert preprocess_record(record, spec, AtlasLocaliser())["roi_source"] == "centre"


def test_the_depth_follows_the_axis_nearest_the_head_axis(posed):
    record = posed[NM_SLAB.name]
    assert craniocaudal_depth_mm(sitk.ReadImage(str(record.echoes[0]))) == pytest.approx(26.4)


def test_the_localiser_is_rebuilt_from_its_plain_data():
    localiser = AtlasLocaliser(centre_mni_mm=(1.0, -20.0, -11.0))
    data = localiser.to_dict()
    assert data["kind"] == "atlas"
    assert AtlasLocaliser.from_dict(data) == localiser


@pytest.mark.parametrize("affine", [np.diag([0.5, 0.5, 1.0, 1.0]), np.diag([-0.6, 0.6, 1.2, 1.0])])
def test_a_ball_on_the_grid_has_the_balls_volume(affine):
    shape = (60, 60, 24)
    centre = affine[:3, :3] @ np.array([30.2, 29.7, 12.4]) + affine[:3, 3]
    ball = ball_on_grid(centre, 3.5, shape, affine)
    voxel_mm3 = abs(np.linalg.det(affine[:3, :3]))
    assert ball.sum() * voxel_mm3 == pytest.approx(4 / 3 * np.pi * 3.5**3, rel=0.08)
    world = np.argwhere(ball) @ affine[:3, :3].T + affine[:3, 3]
    assert np.linalg.norm(world - centre, axis=1).max() <= 3.5


def test_the_templates_red_nucleus_lands_where_the_pose_puts_it(posed):
    record = posed[SLAB.name]
    image = nib.load(record.echoes[0])
    rn = AtlasLocaliser().red_nucleus_on(record, image.shape, image.affine)
    assert rn is not None
    world = np.argwhere(rn) @ image.affine[:3, :3].T + image.affine[:3, 3]
    expected = world_of_mni(POSE, np.asarray(RED_NUCLEUS_MNI_MM))
    for side, centre in zip((world[:, 0] < world[:, 0].mean(), world[:, 0] >= world[:, 0].mean()),
                            expected[np.argsort(expected[:, 0])], strict=True):  # fmt: skip
        np.testing.assert_allclose(world[side].mean(axis=0), centre, atol=1.0)
    assert world[:, 2].min() == pytest.approx(expected[:, 2].min() - 3.5, abs=1.5)
