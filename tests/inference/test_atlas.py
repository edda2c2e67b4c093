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
from sn_platform.data.templates import NUCLEI_ATLAS_LABELS, mni_template_path, nuclei_atlas_path
from sn_platform.inference.atlas import (
    STRUCTURES_CENTRE_MNI_MM,
    AtlasLocaliser,
    craniocaudal_depth_mm,
    sampling_shares,
    similarity_to_mni,
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
    return SubjectRecord(site.name, {"echo-1": echo_path(root, site.name, 1)})


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
    mapped = template_points_on(record.grid_image, points)
    assert mapped is not None
    np.testing.assert_allclose(mapped, world_of_mni(POSE, points), atol=1.0)


def test_a_flat_image_is_not_registered_and_the_box_goes_to_the_centre(tmp_path):
    path = tmp_path / "flat.nii.gz"
    nib.nifti1.save(nib.Nifti1Image(np.full((40, 40, 20), 100.0, np.float32), np.eye(4)), path)
    record = SubjectRecord("flat", {"echo-1": path})
    assert AtlasLocaliser().locate(record) is None
    spec = PreprocessingSpec(
        channels=("echo-1",), spacing_mm=(1.0, 1.0, 1.0), roi_mm=(16.0, 16.0, 8.0)
    )
    assert preprocess_record(record, spec, AtlasLocaliser())["roi_source"] == "centre"


def test_the_depth_follows_the_axis_nearest_the_head_axis(posed):
    record = posed[NM_SLAB.name]
    assert craniocaudal_depth_mm(sitk.ReadImage(str(record.grid_image))) == pytest.approx(26.4)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        # Site A, 440 x 440 x 40: 121 000, 968 000 and 7 744 000 voxels at the 3 levels;
        # the coarsest level's 10 % (12 100) is raised to 20 000 points.
        ((440, 440, 40), [20_000 / 121_000, 0.05, 0.01]),
        # An NM slab, 240 x 320 x 12: 14 400, 115 200 and 921 600 voxels.
        ((240, 320, 12), [1.0, 20_000 / 115_200, 20_000 / 921_600]),
    ],
)
def test_every_level_samples_its_share_or_the_minimum_count(size, expected):
    shares = sampling_shares(size, (0.1, 0.05, 0.01), minimum_samples=20_000)
    np.testing.assert_allclose(shares, expected)


def test_the_localiser_is_rebuilt_from_its_plain_data():
    localiser = AtlasLocaliser(centre_mni_mm=(1.0, -20.0, -11.0))
    data = localiser.to_dict()
    assert data["kind"] == "atlas"
    assert AtlasLocaliser.from_dict(data) == localiser


def _atlas_centroids_mni() -> dict[tuple[str, str], np.ndarray]:
    """(label, side) -> the shipped atlas's centroid (MNI mm), read from the file."""
    image = cast(nib.Nifti1Image, nib.load(nuclei_atlas_path()))
    labels = np.asarray(image.dataobj)
    centroids = {}
    for label, code in NUCLEI_ATLAS_LABELS.items():
        world = np.argwhere(labels == code) @ image.affine[:3, :3].T + image.affine[:3, 3]
        for side, chosen in (("left", world[:, 0] < 0), ("right", world[:, 0] >= 0)):
            centroids[label, side] = world[chosen].mean(axis=0)
    return centroids


def test_the_shipped_atlas_holds_the_nuclei_near_their_published_places():
    # Published MNI centroids (the chi-separation atlas, shared/PHANTOM.md): RN about
    # (+/-5.5, -18, -10), SN about (+/-10, -18, -15) mm. The phantom's plan, from which the
    # atlas is built, puts its SN 2 mm more medial.
    centroids = _atlas_centroids_mni()
    for sign, side in ((-1, "left"), (1, "right")):
        np.testing.assert_allclose(centroids["RN", side], [sign * 5.5, -18, -10], atol=2.5)
        np.testing.assert_allclose(centroids["SN", side], [sign * 10, -18, -15], atol=2.5)
        assert abs(centroids["CC", side][0]) > abs(centroids["SN", side][0])  # lateral


def test_the_itk_transform_and_its_ras_matrix_map_points_alike():
    transform = sitk.Similarity3DTransform()
    transform.SetCenter((3.0, -20.0, -10.0))
    transform.SetRotation((0.3, 0.2, 0.9), 0.2)
    transform.SetScale(1.07)
    transform.SetTranslation((2.0, -1.5, 4.0))
    points_ras = np.array([[0.0, 0.0, 0.0], [10.0, -18.0, -15.0], [-40.0, 25.0, 30.0]])
    flip = np.array([-1.0, -1.0, 1.0])
    expected = np.array([flip * transform.TransformPoint(tuple(flip * p)) for p in points_ras])
    matrix = similarity_to_mni(transform)
    np.testing.assert_allclose(points_ras @ matrix[:3, :3].T + matrix[:3, 3], expected, atol=1e-9)


@pytest.mark.parametrize("site", [SLAB, NM_SLAB], ids=["seed-slab", "nm-slab"])
def test_the_atlas_nuclei_land_where_the_pose_puts_them(posed, site):
    record = posed[site.name]
    image = nib.load(record.grid_image)
    structures = AtlasLocaliser().structures_on(record, image.shape, image.affine)
    assert structures is not None
    for (label, side), centre_mni in _atlas_centroids_mni().items():
        chosen = structures.masks[label] & (
            structures.right if side == "right" else ~structures.right
        )
        world = np.argwhere(chosen) @ image.affine[:3, :3].T + image.affine[:3, 3]
        expected = world_of_mni(POSE, centre_mni[None])[0]
        # Within a voxel of the slab (2.2 mm slices: the slab's sampling of a 5 mm nucleus).
        np.testing.assert_allclose(world.mean(axis=0), expected, atol=max(site.voxel_mm) * 0.6)
