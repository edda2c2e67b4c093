"""Preprocessing spec, TorchIO datasets and the training queue on phantom subjects."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
import torchio as tio

from sn_platform.data.bids import discover_subjects
from sn_platform.data.loaders import (
    make_subject,
    patch_loader,
    stack_echoes,
    subjects_dataset,
    training_queue,
)
from sn_platform.data.preprocessing import LABEL_KEY, PreprocessingSpec


def test_spec_round_trips_through_json():
    spec = PreprocessingSpec(echoes=(1, 2), spacing_mm=None, normalization="percentile")
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
    image = stack_echoes(subject, spec)
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


def test_orientation_does_not_change_the_network_input(phantom_cohort, tmp_path):
    root, _ = phantom_cohort
    record = discover_subjects(root)[1]
    copy = tmp_path / "pir"
    shutil.copytree(root / "sub-002", copy / "sub-002")
    shutil.copytree(
        root / "derivatives" / "manual" / "sub-002", copy / "derivatives" / "manual" / "sub-002"
    )
    for path in copy.rglob("*.nii.gz"):
        image = nib.load(path)
        transform = nib.orientations.ornt_transform(
            nib.orientations.io_orientation(image.affine), nib.orientations.axcodes2ornt("PIR")
        )
        nib.save(image.as_reoriented(transform), path)
    assert nib.aff2axcodes(nib.load(next(copy.rglob("*echo-1*.nii.gz"))).affine) == ("P", "I", "R")
    spec = PreprocessingSpec()
    original = subjects_dataset([record], spec)[0]
    reoriented = subjects_dataset(discover_subjects(copy), spec)[0]
    assert torch.allclose(stack_echoes(original, spec), stack_echoes(reoriented, spec), atol=1e-5)
    assert torch.equal(original[LABEL_KEY].data, reoriented[LABEL_KEY].data)


def test_training_queue_gives_label_weighted_patches(phantom_cohort):
    root, _ = phantom_cohort
    spec = PreprocessingSpec()
    torch.manual_seed(0)
    augmentation = tio.Compose([tio.RandomFlip(axes=("LR",))])
    dataset = subjects_dataset(discover_subjects(root), spec, augmentation)
    queue = training_queue(
        dataset,
        (32, 32, 3),
        samples_per_volume=4,
        max_length=16,
        label_probabilities={0: 0.0, 1: 1.0},
    )
    batches = list(patch_loader(queue, batch_size=4))
    assert len(batches) == 4
    for batch in batches:
        assert stack_echoes(batch, spec).shape == (4, 3, 32, 32, 3)
        labels = batch[LABEL_KEY][tio.DATA]
        # Every patch is centred on an SN voxel when only label 1 is sampled.
        assert torch.all(labels[:, 0, 16, 16, 1] == 1)


def test_make_subject_rejects_missing_echo(phantom_cohort):
    root, _ = phantom_cohort
    record = discover_subjects(root, n_echoes=2)[0]
    with pytest.raises(ValueError, match="echoes \\[3\\] requested but 2 discovered"):
        make_subject(record, PreprocessingSpec())
