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
    STRUCTURES_CENTRE_MNI_MM,
    AtlasLocaliser,
    craniocaudal_depth_mm,
    template_points_on,
)
from sn_platform.inference.predictor import preprocess_record
from sn_platform.phantom.generator import SiteProtocol
from sn_platform.phantom.regions import Pose

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


@pytest.mark.parametrize("site", [SLAB, NM_SLAB], ids=["seed-slab", "nm-slab"])
def test_the_posed_template_gives_back_its_midbrain(tmp_path, mni_t1, site):
    record = _posed_record(tmp_path, mni_t1, site)
    centre = AtlasLocaliser().locate(record)
    truth = world_of_mni(POSE, np.asarray(STRUCTURES_CENTRE_MNI_MM))
    assert centre is not None
    assert np.linalg.norm(centre - truth) < 1.0  # mm: the template registered to itself


def test_every_structure_maps_where_the_pose_puts_it(tmp_path, mni_t1):
    record = _posed_record(tmp_path, mni_t1, SLAB)
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


def test_the_depth_follows_the_axis_nearest_the_head_axis(tmp_path, mni_t1):
    record = _posed_record(tmp_path, mni_t1, NM_SLAB)
    assert craniocaudal_depth_mm(sitk.ReadImage(str(record.echoes[0]))) == pytest.approx(26.4)


def test_the_localiser_is_rebuilt_from_its_plain_data():
    localiser = AtlasLocaliser(centre_mni_mm=(1.0, -20.0, -11.0))
    data = localiser.to_dict()
    assert data["kind"] == "atlas"
    assert AtlasLocaliser.from_dict(data) == localiser
