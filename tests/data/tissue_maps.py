"""Tissue label maps (dseg) that tests write onto phantom cohorts until, and besides, the
phantom's own: air, the head, and the manual CC, RN and SN as classes of their own, so each
class holds exactly the voxels its label does (``class_map``'s order: the SN wins)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np

from sn_platform.data.bids import dseg_path, dseg_table_path, echo_path, label_path

# The phantom's class numbers (sn_platform.phantom.compositor.TissueClass).
CLASSES = {"air": 0, "white_matter": 4, "CC": 7, "SN": 8, "RN": 9}
HEAD_FRACTION = 0.25  # of echo 1's 99th percentile: the head, not the air's noise


def write_tissue_maps(root: Path) -> None:
    """A dseg for every subject of ``root`` (and ``dseg.tsv``) from its echo 1 and its
    manual labels, on echo 1's grid."""
    for folder in sorted(root.glob("sub-*")):
        participant_id = folder.name.removeprefix("sub-")
        echo1 = nib.load(echo_path(root, participant_id, 1))
        signal = np.asarray(echo1.dataobj, dtype=np.float64)
        head = signal > HEAD_FRACTION * np.percentile(signal, 99)
        classes = np.where(head, CLASSES["white_matter"], CLASSES["air"]).astype(np.uint8)
        for name in ("CC", "RN", "SN"):
            path = label_path(root, "manual", participant_id, name)
            if path.exists():
                classes[np.asarray(nib.load(path).dataobj) > 0] = CLASSES[name]
        target = dseg_path(root, participant_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(classes, echo1.affine), target)
    rows = "".join(f"{index}\t{name}\n" for name, index in CLASSES.items())
    dseg_table_path(root).write_text("index\tname\n" + rows)


def linked_cohort(source: Path, target: Path) -> Path:
    """``target`` with links to ``source``'s subjects and manual labels (no tissue maps)."""
    (target / "derivatives").mkdir(parents=True)
    for folder in sorted(source.glob("sub-*")):
        (target / folder.name).symlink_to(folder)
    (target / "derivatives" / "manual").symlink_to(source / "derivatives" / "manual")
    shutil.copy(source / "participants.tsv", target / "participants.tsv")
    return target
