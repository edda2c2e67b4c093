"""Preprocessing spec, TorchIO datasets and both training pipelines on phantom subjects."""

from __future__ import annotations

import shutil
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest
import torch
import torchio as tio

from sn_platform.data.augment import RandomLabelsToEchoes
from sn_platform.data.batches import training_batches
from sn_platform.data.bids import DataValidationError, discover_subjects, dseg_path
from sn_platform.data.loaders import (
    make_subject,
    prepared_subjects,
    stack_channels,
    subjects_dataset,
)
from sn_platform.data.preprocessing import (
    ANNOTATED_KEY,
    LABEL_KEY,
    TISSUES_KEY,
    PreprocessingSpec,
)
from sn_platform.data.roi import mask_centre
from sn_platform.data.settings import PIPELINES, DataSettings, SplitSettings
from tests.data.tissue_maps import CLASSES, linked_cohort, write_tissue_maps


def test_spec_round_trips_through_json():
    spec = PreprocessingSpec(
        channels=("echo-1", "echo-2"), spacing_mm=None, normalization="percentile"
    )
    assert PreprocessingSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ValueError, match="unknown preprocessing keys"):
        PreprocessingSpec.from_dict({**spec.to_dict(), "colour": "blue"})
    with pytest.raises(ValueError, match="normalization"):
        PreprocessingSpec(normalization="minmax")  # type: ignore[arg-type]


def test_whole_field_of_view_with_one_class_map(phantom_cohort):
    root, _ = phantom_cohort
    records = discover_subjects(root, labels=("SN", "RN"))
    spec = PreprocessingSpec()
    subject = subjects_dataset(records[:1], spec, labels=("SN", "RN"))[0]
    image = stack_channels(subject, spec)
    assert image.shape == (3, 272, 272, 40)  # no slab: the whole 136 x 136 x 40 mm view
    assert torch.allclose(image.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(image.std(dim=(1, 2, 3)), torch.ones(3), atol=1e-3)
    manual = nib.load(records[0].labels["SN"]).get_fdata() > 0
    rn = nib.load(records[0].labels["RN"]).get_fdata() > 0
    expected = np.where(manual, 1, np.where(rn, 2, 0))  # the SN wins where both are drawn
    assert torch.equal(subject[LABEL_KEY].data[0], torch.from_numpy(expected).to(torch.uint8))


def test_no_class_map_without_every_label(phantom_cohort):
    root, _ = phantom_cohort
    record = discover_subjects(root, optional_labels=())[0]
    subject = subjects_dataset([record], PreprocessingSpec(), labels=("SN", "RN"))[0]
    assert subject["echo1"].shape == (1, 272, 272, 40)
    assert LABEL_KEY not in subject


def _reoriented_copy(root, copy, folders=("derivatives/manual",)):
    """Subject 002 of ``root`` and its files under ``folders``, stored PIR in ``copy``."""
    shutil.copytree(root / "sub-002", copy / "sub-002")
    for folder in folders:
        shutil.copytree(root / folder / "sub-002", copy / folder / "sub-002")
    for path in copy.rglob("*.nii.gz"):
        image = nib.load(path)
        transform = nib.orientations.ornt_transform(
            nib.orientations.io_orientation(image.affine), nib.orientations.axcodes2ornt("PIR")
        )
        nib.save(image.as_reoriented(transform), path)
    assert nib.aff2axcodes(nib.load(next(copy.rglob("*echo-1*.nii.gz"))).affine) == ("P", "I", "R")
    return copy


def test_orientation_does_not_change_the_network_input(phantom_cohort, tmp_path):
    root, _ = phantom_cohort
    record = discover_subjects(root)[1]
    copy = _reoriented_copy(root, tmp_path / "pir")
    spec = PreprocessingSpec()
    original = subjects_dataset([record], spec)[0]
    reoriented = subjects_dataset(discover_subjects(copy), spec)[0]
    assert torch.allclose(
        stack_channels(original, spec), stack_channels(reoriented, spec), atol=1e-5
    )
    assert torch.equal(original[LABEL_KEY].data, reoriented[LABEL_KEY].data)


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_both_pipelines_give_label_weighted_patches(phantom_cohort, pipeline):
    root, _ = phantom_cohort
    spec = PreprocessingSpec()
    torch.manual_seed(0)
    augmentation = tio.Compose([tio.RandomFlip(axes=("LR",))])
    data = DataSettings(
        root=None, preprocessing=spec, splits=SplitSettings(file="unused"),
        patch_size=(32, 32, 3), pipeline=pipeline, samples_per_volume=4, queue_length=16,
        label_probabilities={0: 0.0, 1: 1.0},
    )  # fmt: skip
    with training_batches(discover_subjects(root), data, augmentation, seed=0) as epochs:
        batches = list(epochs(0))
    assert len(batches) == 4
    for batch in batches:
        assert stack_channels(batch, spec).shape == (4, 3, 32, 32, 3)
        labels = batch[LABEL_KEY][tio.DATA]
        # Every patch is centred on an SN voxel when only label 1 is sampled.
        assert torch.all(labels[:, 0, 16, 16, 1] == 1)


def test_make_subject_rejects_missing_echo(phantom_cohort):
    root, _ = phantom_cohort
    record = discover_subjects(root, channels=("echo-1", "echo-2"))[0]
    expected = r"channels \['echo-3'\] requested but \['echo-1', 'echo-2'\] discovered"
    with pytest.raises(ValueError, match=expected):
        make_subject(record, PreprocessingSpec())


def test_a_channel_blank_in_the_training_box_is_refused_naming_its_file(phantom_cohort, tmp_path):
    root = tmp_path / "bids"
    shutil.copytree(phantom_cohort[0], root)
    record = discover_subjects(root, labels=("SN",))[0]
    blank = record.channels["echo-2"]
    image = nib.load(blank)
    nib.save(nib.Nifti1Image(np.full(image.shape, 7, np.int16), image.affine), blank)
    for spec in (PreprocessingSpec(roi_mm=(32.0, 32.0, 16.0)), PreprocessingSpec()):
        where = "the volume" if spec.roi_mm is None else "the box around the midbrain"
        with pytest.raises(DataValidationError) as refused:
            prepared_subjects([record], spec, labels=("SN",))
        assert str(refused.value) == f"{blank}: every voxel of {where} is 7: no contrast to segment"


def test_the_tissue_map_takes_the_spatial_steps_in_register_with_the_images(
    phantom_cohort, tmp_path
):
    root = linked_cohort(phantom_cohort[0], tmp_path / "ras")
    write_tissue_maps(root)
    pir = _reoriented_copy(root, tmp_path / "pir", ("derivatives/manual", "derivatives/truth"))
    spec = PreprocessingSpec(roi_mm=(64.0, 64.0, 64.0))
    labels = ("SN", "RN", "CC")
    renders = RandomLabelsToEchoes(p=0.0)  # asks for the tissue map, changes nothing
    (record,) = discover_subjects(root, labels=labels, subjects=["002"], tissues=True)
    (stored_pir,) = discover_subjects(pir, labels=labels, tissues=True)
    with_map = subjects_dataset([record], spec, renders, labels)[0]
    without = subjects_dataset([record], spec, None, labels)[0]
    reoriented = subjects_dataset([stored_pir], spec, renders, labels)[0]
    assert TISSUES_KEY not in without
    classes, label = with_map[TISSUES_KEY], with_map[LABEL_KEY]
    # The 64 mm box at 0.5 x 0.5 x 1 mm; the channels are the echoes alone, as without it.
    assert classes.spatial_shape == (128, 128, 40)  # every slice of the 40 mm slab
    np.testing.assert_array_equal(classes.affine, with_map["echo1"].affine)
    assert torch.equal(stack_channels(with_map, spec), stack_channels(without, spec))
    assert torch.equal(label.data, without[LABEL_KEY].data)
    # Each structure's class holds exactly its label's voxels after resampling and the crop.
    for index, name in enumerate(labels, start=1):
        assert int((label.data == index).sum()) > 0
        assert torch.equal(classes.data == CLASSES[name], label.data == index)
    assert torch.equal(reoriented[TISSUES_KEY].data, classes.data)  # stored PIR, same voxels
    # ... and where they were in the world: the SN's centre within a voxel of the file's.
    stored = nib.load(dseg_path(root, "002"))
    native = mask_centre(np.asarray(stored.dataobj) == CLASSES["SN"], stored.affine)
    boxed = mask_centre(classes.data[0].numpy() == CLASSES["SN"], classes.affine)
    assert native is not None and boxed is not None
    assert np.abs(boxed - native).max() < 0.6
    # The images too: the head's class is bright in echo 1 (air is 0 there).
    echo1, inside = with_map["echo1"].data[0], classes.data[0] > 0
    assert float(echo1[inside].mean()) > float(echo1[~inside].mean()) + 1.0


def test_a_tissue_map_is_refused_unless_discovered(phantom_cohort):
    root, _ = phantom_cohort
    record = discover_subjects(root)[0]
    with pytest.raises(ValueError, match="no tissue label map discovered"):
        make_subject(record, PreprocessingSpec(), tissues=True)


def test_partial_labels_keep_their_classes_and_say_which_were_drawn(phantom_cohort):
    root, _ = phantom_cohort
    labels = ("SN", "RN", "CC")
    full, sn_only = discover_subjects(root, labels=labels)[:2]
    sn_only = replace(sn_only, labels={"SN": sn_only.labels["SN"]})
    spec = PreprocessingSpec(spacing_mm=(1.0, 1.0, 1.0), roi_mm=(32.0, 32.0, 16.0))
    dataset = subjects_dataset([full, sn_only], spec, labels=labels, partial=True)
    assert dataset[0][ANNOTATED_KEY].tolist() == [True, True, True, True]
    assert dataset[1][ANNOTATED_KEY].tolist() == [True, True, False, False]
    classes = [set(torch.unique(dataset[i][LABEL_KEY].data).tolist()) for i in (0, 1)]
    assert classes == [{0, 1, 2, 3}, {0, 1}]  # the SN stays class 1 without RN and CC
    for pipeline in PIPELINES:
        data = DataSettings(
            root=None, preprocessing=spec, splits=SplitSettings(file="unused"), labels=labels,
            patch_size=(16, 16, 8), pipeline=pipeline, samples_per_volume=2, queue_length=4,
            label_probabilities={0: 0.3, 1: 0.3, 2: 0.2, 3: 0.2}, partial_labels=True,
        )  # fmt: skip
        with training_batches([full, sn_only], data, None, seed=0) as epochs:
            (batch,) = list(epochs(0))
        drawn = sorted(batch[ANNOTATED_KEY].sum(dim=1).tolist())
        assert drawn == [2, 2, 4, 4]  # (B, C + 1): each patch carries its subject's labels
    # Without partial labels a subject lacking one is not a training subject.
    assert LABEL_KEY not in subjects_dataset([sn_only], PreprocessingSpec(), labels=labels)[0]
