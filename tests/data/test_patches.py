"""Patches drawn by index: TorchIO's label-weighted centres, the spec's normalisation, and an
epoch that depends on (seed, epoch) alone, in any worker."""

from __future__ import annotations

import pytest
import torch
import torchio as tio

from sn_platform.data.augment import RandomLabelsToEchoes
from sn_platform.data.bids import discover_subjects
from sn_platform.data.loaders import prepared_subjects, stack_channels
from sn_platform.data.patches import (
    BOX,
    PatchGroups,
    PatchPipeline,
    cohort_label_shares,
    cut_patches,
    generator,
    patch_corners,
)
from sn_platform.data.preprocessing import LABEL_KEY, TISSUES_KEY, PreprocessingSpec
from sn_platform.data.settings import DataSettings, SplitSettings
from tests.data.tissue_maps import CLASSES, linked_cohort, write_tissue_maps

LABELS = ("SN", "RN", "CC")
# 1 mm voxels in a 32 x 32 x 16 mm box: the mechanics in well under a second.
SPEC = PreprocessingSpec(spacing_mm=(1.0, 1.0, 1.0), min_shape=(8, 8, 4), roi_mm=(32.0, 32.0, 16.0))


def settings(**changes) -> DataSettings:
    values = {
        "root": None, "preprocessing": SPEC, "splits": SplitSettings(file="unused"),
        "labels": LABELS, "patch_size": (8, 8, 4), "samples_per_volume": 3,
        "queue_length": 6, "batch_size": 4,
        "label_probabilities": {0: 0.3, 1: 0.35, 2: 0.2, 3: 0.15},
    }  # fmt: skip
    return DataSettings(**{**values, **changes})


def test_every_corner_centres_the_patch_on_the_only_voxel_of_the_class():
    label = torch.zeros(10, 10, 4, dtype=torch.uint8)
    label[5, 6, 2] = 1
    draws = torch.Generator().manual_seed(0)
    corners = patch_corners(label, (4, 4, 2), {0: 0.0, 1: 1.0}, 5, draws)
    # TorchIO's centre of an even size is voxel size // 2: (5, 6, 2) - (2, 2, 1)
    assert corners.tolist() == [[3, 4, 1]] * 5


def test_a_class_without_a_voxel_where_the_patch_fits_leaves_its_share_to_the_others():
    label = torch.zeros(10, 10, 4, dtype=torch.uint8)
    label[0, 0, 0] = 1  # no 4 x 4 x 2 patch is centred there
    draws = torch.Generator().manual_seed(0)
    corners = patch_corners(label, (4, 4, 2), {0: 0.5, 1: 0.5}, 50, draws)
    assert corners.min() >= 0 and (corners.max(dim=0).values <= torch.tensor([6, 6, 2])).all()
    with pytest.raises(ValueError, match=r"no voxel of classes \[1\] where a \[4, 4, 2\] patch"):
        patch_corners(label, (4, 4, 2), {0: 0.0, 1: 1.0}, 1, draws)


def test_classes_are_centred_on_with_their_probabilities():
    label = torch.zeros(12, 12, 4, dtype=torch.uint8)
    label[4:8, 4:8, 1:3] = 1
    label[6, 6, 2] = 2  # one voxel of class 2 among the 31 of class 1
    draws = torch.Generator().manual_seed(1)
    corners = patch_corners(label, (4, 4, 2), {1: 3.0, 2: 1.0}, 4000, draws)
    centres = label[corners[:, 0] + 2, corners[:, 1] + 2, corners[:, 2] + 1]
    assert float((centres == 2).float().mean()) == pytest.approx(0.25, abs=0.03)
    assert set(centres.tolist()) == {1, 2}


def test_a_label_drawn_on_half_the_cohort_keeps_its_share_of_the_cohorts_patches():
    probabilities = {0: 0.3, 1: 0.35, 2: 0.2, 3: 0.15}
    full, sn_only = [True] * 4, [True, True, False, False]
    assert cohort_label_shares(probabilities, [full] * 3) == [probabilities] * 3
    shares = cohort_label_shares(probabilities, [full, sn_only])
    # RN and CC twice their shares where drawn; background and SN share the rest 0.3 : 0.35
    assert shares[0] == pytest.approx({0: 0.3 * 0.3 / 0.65, 1: 0.3 * 0.35 / 0.65, 2: 0.4, 3: 0.3})
    assert shares[1] == pytest.approx({0: 0.3 / 0.65, 1: 0.35 / 0.65, 2: 0.0, 3: 0.0})
    for label, share in probabilities.items():  # the cohort's share of each class, as preset
        assert (shares[0][label] + shares[1][label]) / 2 == pytest.approx(share)
    # RN and CC on one subject of four: theirs would take 1.4 of its patches, so all, 4 : 3
    rare = cohort_label_shares(probabilities, [full] + [sn_only] * 3)[0]
    assert rare == pytest.approx({0: 0.0, 1: 0.0, 2: 4 / 7, 3: 3 / 7})
    # Two boxes with all three classes, one with the first only: class 2's share of the
    # cohort's centres, drawn as the pipeline draws them.
    drawn = torch.zeros(12, 12, 4, dtype=torch.uint8)
    drawn[2:5, 2:10, 1:3], drawn[6:8, 2:10, 1:3], drawn[9:11, 2:10, 1:3] = 1, 2, 3
    first_only = torch.where(drawn == 1, drawn, 0)
    boxes = [drawn, first_only]

    def share_of_class_2(per_box: list[dict[int, float]]) -> float:
        draws = torch.Generator().manual_seed(2)
        centres = [
            box[corners[:, 0] + 2, corners[:, 1] + 2, corners[:, 2] + 1]
            for box, weights in zip(boxes, per_box, strict=True)
            for corners in [patch_corners(box, (4, 4, 2), weights, 3000, draws)]
        ]
        return float((torch.cat(centres) == 2).float().mean())

    # 0.5 x 0.4 of the centres, as in a fully labelled cohort, against 0.5 x 0.2
    assert share_of_class_2(shares) == pytest.approx(0.200, abs=0.012)
    assert share_of_class_2([probabilities] * 2) == pytest.approx(0.100, abs=0.012)


def test_patches_are_cut_at_their_corners():
    volume = torch.arange(2 * 6 * 5 * 4).view(2, 6, 5, 4)
    patches = cut_patches(volume, torch.tensor([[0, 0, 0], [3, 2, 1]]), (3, 3, 3))
    assert patches.shape == (2, 2, 3, 3, 3)
    assert torch.equal(patches[1], volume[:, 3:6, 2:5, 1:4])


@pytest.fixture(scope="module")
def boxes(phantom_cohort):
    return prepared_subjects(discover_subjects(phantom_cohort[0], labels=LABELS), SPEC, LABELS)


def test_each_patch_is_the_normalised_box_where_it_was_cut_centred_on_a_drawn_class(boxes):
    normalised = [SPEC.intensity_transform()(box) for box in boxes]
    probabilities = {0: 0.0, 1: 0.5, 2: 0.5, 3: 0.0}  # SN and RN centres only
    groups = PatchGroups(boxes, SPEC, None, settings(label_probabilities=probabilities), 3)
    with PatchPipeline(groups) as epochs:
        batches = list(epochs(0))
        assert len(batches) == len(epochs) == 3  # 4 boxes x 3 patches in batches of 4
    for batch in batches:
        inputs, labels = stack_channels(batch, SPEC), batch[LABEL_KEY][tio.DATA]
        for patch, label, location in zip(inputs, labels, batch[tio.LOCATION], strict=True):
            i, j, k, *_ = location.tolist()
            assert int(label[0, 4, 4, 2]) in (1, 2)  # the centre voxel: SN or RN
            sources = [
                box for box in normalised
                if torch.equal(box[LABEL_KEY].data[:, i : i + 8, j : j + 8, k : k + 4], label)
            ]  # fmt: skip
            expected = stack_channels(sources[0], SPEC)[:, i : i + 8, j : j + 8, k : k + 4]
            torch.testing.assert_close(patch, expected, rtol=1e-5, atol=1e-5)


def _epoch(boxes, epoch, workers, seed=0, augmentation=None):
    groups = PatchGroups(boxes, SPEC, augmentation, settings(num_workers=workers), seed)
    with PatchPipeline(groups) as epochs:
        return list(epochs(epoch))


def test_an_epoch_depends_on_the_seed_and_the_epoch_alone_in_any_worker(boxes):
    flip = tio.RandomFlip(axes=("LR",))
    first = _epoch(boxes, 1, workers=0, augmentation=flip)
    again = _epoch(boxes, 1, workers=1, augmentation=flip)
    for ours, theirs in zip(first, again, strict=True):
        assert torch.equal(stack_channels(ours, SPEC), stack_channels(theirs, SPEC))
        assert torch.equal(ours[tio.LOCATION], theirs[tio.LOCATION])
    other_epoch = _epoch(boxes, 2, workers=0, augmentation=flip)
    other_seed = _epoch(boxes, 1, workers=0, seed=1, augmentation=flip)
    for other in (other_epoch, other_seed):
        assert not torch.equal(stack_channels(other[0], SPEC), stack_channels(first[0], SPEC))


def test_a_negative_run_seed_draws_as_its_value_modulo_2_64():
    drawn = [torch.rand(3, generator=generator(seed, 2, BOX, 3)) for seed in (-1, 2**64 - 1, 1)]
    assert torch.equal(drawn[0], drawn[1]) and not torch.equal(drawn[0], drawn[2])


def test_the_pipeline_leaves_the_callers_random_streams_alone(boxes):
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    _epoch(boxes, 0, workers=0, augmentation=tio.RandomFlip(axes=("LR",)))
    assert torch.equal(torch.rand(3), expected)


def test_synthetic_contrasts_render_every_patch_from_its_boxs_tissue_map(phantom_cohort, tmp_path):
    root = linked_cohort(phantom_cohort[0], tmp_path / "cohort")
    write_tissue_maps(root)
    records = discover_subjects(root, labels=LABELS, subjects=["002"], tissues=True)
    (box,) = prepared_subjects(records, SPEC, LABELS, tissues=True)
    # One intensity per tissue class and echo (no within-class SD), air included.
    render = RandomLabelsToEchoes(default_std=(0.0, 0.0), ignore_background=False)
    (batch,) = _epoch([box], 0, workers=0, augmentation=render)  # its 3 patches
    for patch, location in zip(stack_channels(batch, SPEC), batch[tio.LOCATION], strict=True):
        i, j, k, *_ = location.tolist()
        tissues = box[TISSUES_KEY].data[0, i : i + 8, j : j + 8, k : k + 4]
        drawn = [c for c in CLASSES.values() if int((tissues == c).sum()) > 1]
        assert CLASSES["white_matter"] in drawn
        for tissue in drawn:
            assert float(patch[:, tissues == tissue].std(dim=1).max()) < 1e-4
