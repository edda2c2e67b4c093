"""benchmarks/real_anatomy.py: Colin27 posed into a site's slab lands where the pose says,
the scores are hand-checkable, and one pose runs through sn-infer's cascade end to end."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from benchmarks.real_anatomy import (
    CENTROIDS_MNI_MM,
    COLIN27,
    MIDBRAIN_MNI_MM,
    MISSING_COLIN27,
    PEAK_MAGNITUDE,
    Template,
    centroid_errors,
    draw_pose,
    load_template,
    mni_of_world,
    posed_image,
    rn_not_found,
    sample_template,
    slab_mni_z,
    slice_offsets_mm,
    structures_from_atlas,
    summarise,
    world_of_mni,
    write_subject,
)
from sn_platform.data.bids import chimap_path, echo_path
from sn_platform.phantom.generator import ras_affine
from sn_platform.phantom.regions import Pose
from sn_platform.phantom.settings import SiteProtocol

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "real_anatomy.py"
needs_colin27 = pytest.mark.skipif(not COLIN27.exists(), reason=MISSING_COLIN27)
# A 20 x 20 x 10 mm grid of 0.5 mm voxels with an odd count per axis: its voxel centres sit
# on multiples of 0.5 mm, as Colin27's do.
SMALL_SITE = SiteProtocol(
    name="T", voxel_mm=(0.5, 0.5, 0.5), fov_mm=(20.5, 20.5, 10.5), slice_thickness_mm=0.5,
    orientation="PIR",
)  # fmt: skip
MIDBRAIN_VOXEL = (150, 178, 109)  # Colin27's voxel at MNI (0, -18, -15)


@pytest.fixture(scope="module")
def colin27() -> Template:
    return load_template()


def test_the_qc_flag_tells_a_missing_rn_and_the_structures_from_the_atlas():
    atlas = "RN left, SN right from the registered atlas (the network's missing or off the atlas's)"
    assert rn_not_found("RN not found; CC empty in the slab")
    assert not rn_not_found(f"{atlas}; CC empty in the slab")
    assert not rn_not_found("implausible RN volume 2 mm^3 (expected 60-1000)")
    assert structures_from_atlas(f"empty mask; {atlas}") == ["RN left", "SN right"]
    assert structures_from_atlas("RN not found") == [] == structures_from_atlas("ok")


def test_the_posed_published_centroids_map_back_to_their_mni_values():
    rng = np.random.default_rng(3)
    centroids = np.array(list(CENTROIDS_MNI_MM.values()))
    for _ in range(10):
        pose = draw_pose(rng, (15.0, 15.0, 5.0))
        assert (np.abs(pose.rotation_deg) <= [7.2, 7.2, 12.0]).all()
        assert (np.abs(pose.shift_mm) <= [15.0, 15.0, 5.0]).all()
        np.testing.assert_allclose(world_of_mni(pose, MIDBRAIN_MNI_MM), pose.shift_mm)
        world = world_of_mni(pose, centroids)
        # Rigid: the left and right SN stay 20 mm apart, the RN 11 mm.
        assert np.linalg.norm(world[0] - world[1]) == pytest.approx(20.0)
        assert np.linalg.norm(world[2] - world[3]) == pytest.approx(11.0)
        np.testing.assert_allclose(mni_of_world(pose, world), centroids, atol=1e-12)


@pytest.mark.parametrize(
    ("thickness_mm", "offsets_mm"),
    [(0.5, [0.0]), (1.0, [-0.25, 0.25]), (1.2, [-0.4, 0.0, 0.4]), (1.6, [-0.6, -0.2, 0.2, 0.6])],
)
def test_a_slice_is_sampled_evenly_across_its_thickness(thickness_mm, offsets_mm):
    np.testing.assert_allclose(slice_offsets_mm(thickness_mm, 0.5), offsets_mm, atol=1e-12)


def _blob(shape: tuple[int, int, int], affine: np.ndarray, world_mm: np.ndarray) -> np.ndarray:
    """3 x 3 x 3 voxels centred on the voxel whose centre is ``world_mm``."""
    index = np.linalg.inv(affine)[:3] @ np.append(world_mm, 1.0)
    np.testing.assert_allclose(index, np.rint(index), atol=1e-9)
    x, y, z = np.rint(index).astype(int)
    mask = np.zeros(shape, dtype=bool)
    mask[x - 1 : x + 2, y - 1 : y + 2, z - 1 : z + 2] = True
    return mask


def test_centroid_errors_split_the_sides_at_the_posed_mid_sagittal_plane():
    # Turned 90 degrees about z, MNI x (the sides) runs along world y: the RN at MNI x = +5.5
    # lies at world x = shift x, on the unposed mid-sagittal plane.
    pose = Pose((0.0, 0.0, 90.0), (0.5, -1.0, 0.0), deformation_seed=0)
    shape = (81, 81, 61)
    affine = np.diag([0.5, 0.5, 0.5, 1.0])
    affine[:3, 3] = (-20.0, -20.0, -15.0)

    def at(key: str, displacement_mm: tuple[float, float, float]) -> np.ndarray:
        centre = world_of_mni(pose, np.asarray(CENTROIDS_MNI_MM[key])) + displacement_mm
        return _blob(shape, affine, centre)

    masks = {
        "SN": at("SN_left", (0.0, 0.0, 0.0)) | at("SN_right", (0.0, 0.0, 1.5)),
        "RN": at("RN_left", (1.0, 0.0, 0.0)),  # no right RN
    }
    errors = centroid_errors(masks, affine, pose)
    assert errors["SN_left"] == pytest.approx(0.0, abs=1e-9)
    assert errors["SN_right"] == pytest.approx(1.5)
    assert errors["RN_left"] == pytest.approx(1.0)
    assert math.isnan(errors["RN_right"])


def test_the_slab_centre_maps_to_mni_z_through_the_inverse_pose():
    level = Pose((0.0, 0.0, 0.0), (2.0, -3.0, 4.0), deformation_seed=0)
    assert slab_mni_z(-1.0, 1.0, level) == pytest.approx(-19.0)  # 0 - 4 - 15
    tilted = Pose((10.0, 0.0, 0.0), (2.0, -3.0, 4.0), deformation_seed=0)
    # 4 mm below the midbrain in world z is 4 cos(10 deg) mm below it along MNI z.
    assert slab_mni_z(-1.0, 1.0, tilted) == pytest.approx(-15.0 - 4.0 * np.cos(np.radians(10)))
    assert math.isnan(slab_mni_z(math.nan, math.nan, level))


def test_the_summary_counts_and_shares():
    def entry(errors: list[float], rn_not_found: bool, in_range: bool, flag: str) -> dict:
        atlas = ["RN left", "SN left"] if "atlas" in flag else []
        return {
            "from_atlas": atlas,
            "centroid_error_mm": dict(zip(CENTROIDS_MNI_MM, errors, strict=True)),
            "all_within_tolerance": all(e <= 4.0 for e in errors),
            "rn_not_found": rn_not_found,
            "slab_in_sn_range": in_range,
            "qc_flag": flag,
        }

    entries = [
        entry([1.0, 2.0, 3.0, 4.0], False, True, "ok"),
        entry([3.0, 6.0, math.nan, math.nan], True, False, "RN not found; empty mask"),
        entry([2.0, 1.0, 2.0, 1.0], False, False, "ok"),
        entry([2.0, 1.0, 2.0, 1.0], False, True, "RN left, SN left from the registered atlas"),
    ]
    summary = summarise(entries)
    assert summary["poses"] == 4 and summary["failed"] == 0
    assert summary["share_all_within_tolerance"] == pytest.approx(3 / 4)
    assert summary["rn_not_found"] == 1 and summary["qc_flagged"] == 2
    assert summary["share_slab_in_sn_range"] == pytest.approx(2 / 4)
    assert summary["poses_with_atlas_structures"] == 1
    assert summary["from_atlas"] == {"RN left": 1, "SN left": 1}
    assert summary["median_error_mm"] == {
        "SN_left": 2.0, "SN_right": 1.5, "RN_left": 2.0, "RN_right": 1.0,
    }  # fmt: skip


@needs_colin27
def test_template_samples_are_nibabels_voxels_and_their_trilinear_means(colin27):
    image = nib.load(COLIN27)
    data = np.asarray(image.dataobj).astype(np.float64)  # uint8 on disk
    indices = np.array([MIDBRAIN_VOXEL, (100, 200, 150), (37, 55, 201), (210, 120, 60)])
    mni = indices @ image.affine[:3, :3].T + image.affine[:3, 3]
    np.testing.assert_allclose(sample_template(colin27, mni), data[tuple(indices.T)], atol=1e-4)
    assert MIDBRAIN_VOXEL == tuple(np.rint(np.linalg.inv(image.affine)[:3] @ [0, -18, -15, 1]))
    # Half a voxel (0.25 mm) to the right of the midbrain voxel: the mean of two voxels.
    between = sample_template(colin27, np.array([0.25, -18.0, -15.0]))
    x, y, z = MIDBRAIN_VOXEL
    assert between == pytest.approx((data[x, y, z] + data[x + 1, y, z]) / 2, abs=1e-4)
    assert sample_template(colin27, np.array([200.0, 0.0, 0.0])) == 0.0  # outside: air


@needs_colin27
def test_an_unrotated_pose_on_the_template_grid_copies_its_voxels(colin27):
    pose = Pose((0.0, 0.0, 0.0), (0.5, -1.0, 1.5), deformation_seed=0)
    # The grid's first voxel at world (-10, -10, -5) mm is MNI (-10.5, -27, -21.5) mm:
    # Colin27's voxel (129, 160, 96).
    expected = colin27.data[129:170, 160:201, 96:117]
    np.testing.assert_allclose(posed_image(colin27, SMALL_SITE, pose), expected, atol=1e-4)
    # 1 mm slices of 0.5 mm spacing: each voxel 1/4, 1/2, 1/4 of three template slices.
    thick = SiteProtocol(
        name="T", voxel_mm=(0.5, 0.5, 0.5), fov_mm=(20.5, 20.5, 10.5), slice_thickness_mm=1.0
    )
    block = colin27.data[129:170, 160:201, 95:118]
    profile = 0.25 * block[..., :-2] + 0.5 * block[..., 1:-1] + 0.25 * block[..., 2:]
    np.testing.assert_allclose(posed_image(colin27, thick, pose), profile, atol=1e-3)


@needs_colin27
def test_a_posed_subject_shows_colin27s_midbrain_voxel_where_the_pose_puts_it(colin27, tmp_path):
    # The pose puts the MNI midbrain point on the centre of RAS voxel (12, 30, 7).
    shift = ras_affine(SMALL_SITE)[:3] @ [12, 30, 7, 1]
    pose = Pose((5.0, -4.0, 10.0), (float(shift[0]), float(shift[1]), float(shift[2])), 0)
    image = posed_image(colin27, SMALL_SITE, pose)
    assert image[12, 30, 7] == pytest.approx(colin27.data[MIDBRAIN_VOXEL], abs=1e-3)
    scale = PEAK_MAGNITUDE / float(colin27.data.max())
    write_subject(tmp_path, "T01", SMALL_SITE, image, scale)
    echo = nib.load(echo_path(tmp_path, "T01", 1))
    assert nib.aff2axcodes(echo.affine) == ("P", "I", "R")
    assert echo.get_data_dtype() == np.int16
    stored = np.rint(np.linalg.inv(echo.affine)[:3] @ np.append(shift, 1.0)).astype(int)
    value = np.asarray(echo.dataobj)[tuple(stored)]
    assert value == np.rint(colin27.data[MIDBRAIN_VOXEL] * scale)
    for number, te_s in ((1, 0.0075), (2, 0.015), (3, 0.0225)):
        path = echo_path(tmp_path, "T01", number)
        sidecar = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
        assert sidecar["EchoTime"] == te_s and sidecar["EchoNumber"] == number
    assert not echo_path(tmp_path, "T01", 4).exists()
    chi = nib.load(chimap_path(tmp_path, "T01"))
    assert chi.get_data_dtype() == np.float32 and not np.asarray(chi.dataobj).any()
    np.testing.assert_array_equal(chi.affine, echo.affine)


@pytest.mark.slow
@needs_colin27
def test_one_pose_runs_through_the_registered_cascade(registered_model, tmp_path):
    work, written = tmp_path / "work", tmp_path / "real-anatomy.json"
    command = [
        sys.executable, str(SCRIPT), "--tracking-uri", registered_model, "--poses", "1",
        "--sites", "B", "--seed", "4", "--work", str(work), "--output", str(written),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert json.loads(written.read_text()) == report
    assert report["model_uri"] == "models:/sn-vnet@champion" and report["sites"] == ["B"]
    (entry,) = report["per_pose"]
    assert entry["participant_id"] == "sub-B01" and entry["site"] == "B"
    pose = draw_pose(np.random.default_rng([4, *b"B"]), (15.0, 15.0, 5.0))
    np.testing.assert_allclose(entry["rotation_deg"], pose.rotation_deg)
    np.testing.assert_allclose(entry["shift_mm"], pose.shift_mm)
    # The tiny test model is not accurate on a real brain: the values must only be coherent.
    errors = entry["centroid_error_mm"]
    assert set(errors) == set(CENTROIDS_MNI_MM)
    assert all(e is None or (math.isfinite(e) and e >= 0) for e in errors.values())
    within = all(e is not None and e <= 4.0 for e in errors.values())
    assert entry["all_within_tolerance"] == within
    assert entry["rn_not_found"] == rn_not_found(entry["qc_flag"])
    assert entry["from_atlas"] == structures_from_atlas(entry["qc_flag"])
    with (work / "sn-infer" / "measures.tsv").open() as table:
        (row,) = csv.DictReader(table, delimiter="\t")
    assert row["participant_id"] == "sub-B01" and row["qc_flag"] == entry["qc_flag"]
    if entry["rn_not_found"]:
        assert entry["slab_mni_z_mm"] is None and not entry["slab_in_sn_range"]
    else:
        z = slab_mni_z(float(row["slab_bottom_mm"]), float(row["slab_top_mm"]), pose)
        assert entry["slab_mni_z_mm"] == pytest.approx(z)
        assert entry["slab_in_sn_range"] == (-20.0 <= z <= -10.0)
    summary = report["overall"]
    assert report["per_site"]["B"] == summary
    assert summary["poses"] == 1 and summary["failed"] == 0
    assert summary["share_all_within_tolerance"] == float(within)
    assert summary["rn_not_found"] == int(entry["rn_not_found"])
    assert summary["poses_with_atlas_structures"] == int(bool(entry["from_atlas"]))
    assert summary["median_error_mm"] == errors
    echo = nib.load(echo_path(work / "bids", "B01", 1))
    assert echo.shape == (366, 366, 34) and nib.aff2axcodes(echo.affine) == ("L", "A", "S")
    with (work / "bids" / "participants.tsv").open() as table:
        assert list(csv.DictReader(table, delimiter="\t")) == [
            {"participant_id": "sub-B01", "group": "n/a", "site": "B"}
        ]
