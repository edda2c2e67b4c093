"""The MNI head: the nuclei sit on the template's own midbrain, and the label map is true.

The alignment is checked against an atlas the phantom never reads: the JHU white-matter
labels of Debian's mricron-data (cerebral peduncles 15 and 16), where it is installed.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from sn_platform.data.bids import dseg_path, dseg_table_path, label_path
from sn_platform.phantom import anatomy as anat
from sn_platform.phantom.compositor import TissueClass
from sn_platform.phantom.generator import sample_subject_plan
from sn_platform.phantom.nuclei_atlas import nuclei_points_in_mni
from sn_platform.phantom.settings import PhantomConfig
from sn_platform.phantom.template import load_template

JHU_LABELS = Path("/usr/share/mricron/templates/JHU-WhiteMatter-labels-1mm.nii.gz")
CEREBRAL_PEDUNCLES = (15, 16)
# Published MNI centroids (mm), per side with x for the right: chi-separation atlas
# (PHANTOM.md, "Real anatomy").
PUBLISHED_CENTROIDS_MNI = {"SN": (10.0, -18.0, -15.0), "RN": (5.5, -18.0, -10.0)}


@pytest.fixture(scope="module")
def nuclei_in_mni() -> list[dict[str, dict[str, np.ndarray]]]:
    config = PhantomConfig(subjects=4)
    return [nuclei_points_in_mni(sample_subject_plan(config, index)) for index in range(4)]


def test_nuclei_land_at_their_published_mni_centroids(nuclei_in_mni):
    for subject in nuclei_in_mni:
        for label, (x, y, z) in PUBLISHED_CENTROIDS_MNI.items():
            for name, sign in anat.SIDES.items():
                centroid = subject[label][name].mean(axis=0)
                error = np.linalg.norm(centroid - (sign * x, y, z))
                assert error < 3.0, (label, name, centroid)


def test_nuclei_lie_in_the_templates_brain_and_the_crus_in_its_white_matter(nuclei_in_mni):
    template = load_template()
    for subject in nuclei_in_mni:
        for name in anat.SIDES:
            for label in ("SN", "RN"):
                at = template.tissues_at(subject[label][name])
                assert (at.grey + at.white).mean() > 0.9, (label, name)
            # The template's tissue maps do not tell the midbrain's nuclei from its white
            # matter (about half of each there); the crus is not in its CSF.
            crus = template.tissues_at(subject["CC"][name])
            assert (crus.grey + crus.white).mean() > 0.9, name


@pytest.mark.skipif(
    not JHU_LABELS.exists(), reason=f"{JHU_LABELS} absent: apt-get install mricron-data (root)"
)
def test_the_crus_lies_on_the_jhu_cerebral_peduncles(nuclei_in_mni):
    image = nib.load(JHU_LABELS)
    labels = np.asarray(image.dataobj)
    inverse = np.linalg.inv(image.affine)

    def on_peduncle(points: np.ndarray) -> float:
        # mricron-data's copy stores FSL's x-flipped voxel order under a +x affine (its
        # "_R" peduncle lies at negative x): look the points up mirrored.
        mirrored = points * np.array([-1.0, 1.0, 1.0]) - np.array([1.0, 0.0, 0.0])
        voxels = np.rint(mirrored @ inverse[:3, :3].T + inverse[:3, 3]).astype(int)
        return float(np.isin(labels[tuple(voxels.T)], CEREBRAL_PEDUNCLES).mean())

    for subject in nuclei_in_mni:
        for name in anat.SIDES:
            crus = subject["CC"][name]
            assert on_peduncle(crus) > 0.4, name
            # 6 mm forward the crus would leave the peduncle for the cisterns and pons.
            assert on_peduncle(crus + np.array([0.0, 6.0, 0.0])) < 0.5 * on_peduncle(crus)


def test_the_label_map_holds_the_truth_and_lists_its_classes(coarse_site_cohorts):
    root, plans = coarse_site_cohorts["A"]
    table = dseg_table_path(root).read_text().splitlines()
    assert table[0] == "index\tname"
    assert table[1:] == [f"{c.value}\t{c.name.lower()}" for c in TissueClass]
    for plan in plans:
        sub = plan.participant_id
        classes = np.asarray(nib.load(dseg_path(root, sub)).dataobj)
        assert classes.dtype == np.uint8
        for label, tissue_class in (
            ("SN", TissueClass.SUBSTANTIA_NIGRA),
            ("RN", TissueClass.RED_NUCLEUS),
        ):
            truth = np.asarray(nib.load(label_path(root, "truth", sub, label)).dataobj) > 0
            # The truth is the tissue's 50 % membership, so the classes agree on it, but
            # for the CSF painted over the SN's medial tip and nigrosome edges.
            assert (classes[truth] == tissue_class).mean() > 0.9
        present = set(np.unique(classes).tolist())
        assert {
            TissueClass.AIR,
            TissueClass.SCALP_SKULL,
            TissueClass.CSF,
            TissueClass.GREY_MATTER,
            TissueClass.WHITE_MATTER,
        } <= present
        # Air at the corners of the whole-head slab.
        assert classes[0, 0, 0] == TissueClass.AIR
