"""Localisation from a multi-structure prediction: the slab below the predicted RN, where
it came from, and the QC flags, on constructed volumes with known answers."""

from __future__ import annotations

import math
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest
import torch

from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.evaluation.subject import ReferenceCase, evaluate_case
from sn_platform.inference.atlas import AtlasStructures
from sn_platform.inference.batch import OutputPaths, run_subject
from sn_platform.inference.localise import atlas_shift_mm, localise
from sn_platform.inference.options import BatchJob, InferenceOptions, QualityLimits
from sn_platform.inference.predictor import InferenceSettings, NativePrediction, Segmenter
from sn_platform.inference.qc import qc_flag

AFFINE = np.diag([0.5, 0.5, 1.0, 1.0])
SHAPE = (40, 40, 16)
SETTINGS = InferenceSettings(labels=("SN", "RN", "CC"))


def _structures(rn_lowest: int | None = 9) -> dict[str, np.ndarray]:
    """Both SNs over slices 4-10, both RNs (7 x 7 voxels x 4 slices each) from
    ``rn_lowest`` up, both crura over every slice: the slab is slices ``rn_lowest - 3`` ..
    ``rn_lowest - 1``."""
    masks = {name: np.zeros(SHAPE, bool) for name in ("SN", "RN", "CC")}
    for x in (6, 28):  # left and right of the midline x = 20
        masks["SN"][x : x + 6, 20:28, 4:11] = True
        masks["CC"][x : x + 6, 30:34, :] = True
        if rn_lowest is not None:
            masks["RN"][x : x + 7, 10:17, rn_lowest : rn_lowest + 4] = True
    return masks


def _prediction(masks: dict[str, np.ndarray]) -> NativePrediction:
    probabilities = np.stack([np.where(masks[k], 0.9, 0.02) for k in ("SN", "RN", "CC")])
    return NativePrediction(
        probabilities.astype(np.float32), np.ones(SHAPE, bool), AFFINE, SETTINGS.labels
    )


def _row(found, masks, manual=None) -> dict:
    case = ReferenceCase("01", "HC", AFFINE, np.ones(SHAPE), np.ones(SHAPE), None, manual or {})
    return evaluate_case(case, found.masks, found.slab, rule=SETTINGS.slab_rule)


def test_slab_is_placed_below_the_predicted_red_nucleus():
    found = localise(_prediction(_structures(rn_lowest=9)), SETTINGS)
    assert found.slab_source == "predicted"
    assert np.flatnonzero(found.slab.mask.any(axis=(0, 1))).tolist() == [6, 7, 8]
    assert (found.slab.bottom_mm, found.slab.top_mm) == (6.0, 8.0)
    assert set(found.masks) == {"SN", "RN", "CC"}
    row = _row(found, _structures())
    assert row["sn_volume_mm3"] == pytest.approx(2 * 6 * 8 * 3 * 0.25)
    assert qc_flag(row, _prediction(_structures()), found, SETTINGS, QualityLimits()) == "ok"


def test_slab_source_follows_slab_from_and_the_manual_red_nucleus():
    prediction = _prediction(_structures(rn_lowest=9))
    manual = {"RN": _structures(rn_lowest=10)["RN"]}
    from_manual = localise(prediction, SETTINGS, manual=manual, slab_from="manual")
    assert from_manual.slab_source == "manual"
    assert np.flatnonzero(from_manual.slab.mask.any(axis=(0, 1))).tolist() == [7, 8, 9]
    assert from_manual.predicted_slab.offset_slices(from_manual.slab) == -1.0
    assert localise(prediction, SETTINGS, manual=manual).slab_source == "predicted"
    no_manual = localise(prediction, SETTINGS, manual={}, slab_from="manual")
    assert no_manual.slab_source == "predicted"  # no manual RN: the predicted slab
    with pytest.raises(ValueError, match="slab_from"):
        localise(prediction, SETTINGS, slab_from="atlas")


def test_each_label_is_thresholded_at_its_own_threshold_and_the_slab_follows_the_rn():
    masks = _structures(rn_lowest=9)
    faint_rn = _prediction(masks)
    faint_rn.probabilities[1][masks["RN"]] = 0.4  # an under-confident RN: gone at 0.5
    assert not localise(faint_rn, SETTINGS).masks["RN"].any()
    calibrated = replace(SETTINGS, label_thresholds={"RN": 0.3})
    found = localise(faint_rn, calibrated)
    assert np.array_equal(found.masks["RN"], masks["RN"])
    assert np.flatnonzero(found.slab.mask.any(axis=(0, 1))).tolist() == [6, 7, 8]
    sn_too_high = localise(faint_rn, replace(SETTINGS, label_thresholds={"SN": 0.95}))
    assert not sn_too_high.masks["SN"].any()  # SN's own threshold above its 0.9


def test_no_red_nucleus_in_view_is_flagged_not_crashed():
    masks = _structures(rn_lowest=None)
    prediction = _prediction(masks)
    found = localise(prediction, SETTINGS)
    assert not found.slab.found and found.slab_source == "predicted"
    row = _row(found, masks, manual={"SN": masks["SN"]})
    assert row["sn_volume_mm3"] == 0.0 and math.isnan(row["nm_volume_ratio"])
    assert row["sn_volume_whole_mm3"] > 0  # the whole SN is still measured
    flag = qc_flag(row, prediction, found, SETTINGS, QualityLimits())
    assert flag.startswith("RN not found") and "empty mask" not in flag
    assert "CC empty in the slab" in flag


@pytest.mark.parametrize(
    ("rn_lowest", "limits", "reason"),
    [
        (1, QualityLimits(), "slab touches the volume edge"),  # the slab is clipped at slice 0
        (12, QualityLimits(), "slab touches the volume edge"),  # the RN reaches the top
        (9, QualityLimits(rn_volume_range_mm3=(200, 1000)), "implausible RN volume 98 mm^3"),
    ],
)
def test_qc_flags_of_the_slab_and_the_red_nucleus(rn_lowest, limits, reason):
    masks = _structures(rn_lowest=rn_lowest)
    found = localise(_prediction(masks), SETTINGS)
    assert reason in qc_flag(_row(found, masks), _prediction(masks), found, SETTINGS, limits)


def test_an_empty_crus_in_the_slab_is_flagged():
    masks = _structures()
    masks["CC"][..., 5:10] = False
    found = localise(_prediction(masks), SETTINGS)
    flag = qc_flag(_row(found, masks), _prediction(masks), found, SETTINGS, QualityLimits())
    assert flag == "CC empty in the slab"


class NoRedNucleus(torch.nn.Module):
    """Softmax logits over background, SN, RN and CC that never find an RN or a CC."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zero = torch.zeros_like(x[:, :1])
        return torch.cat([zero, x[:, :1], zero - 9, zero - 9], dim=1)


def test_sn_infer_flags_a_subject_without_red_nucleus_and_writes_every_mask(
    phantom_cohort, tmp_path
):
    root, _ = phantom_cohort
    settings = replace(SETTINGS, patch_size=(64, 64, 8), patch_overlap=(0, 0, 0))
    spec = PreprocessingSpec(min_shape=(64, 64, 8))
    segmenter = Segmenter(NoRedNucleus(), spec, settings, torch.device("cpu"))
    job = BatchJob(root, tmp_path, InferenceOptions(progress=False, slab_from="predicted"))
    result = run_subject([segmenter], job, "001")
    row = result["row"]
    assert row["qc_flag"].startswith("RN not found")
    assert row["slab_source"] == "predicted" and math.isnan(row["slab_bottom_mm"])
    assert math.isnan(row["slab_offset_slices"])  # the manual RN exists, the predicted not
    paths = OutputPaths.of(tmp_path, "001")
    for label in ("SN", "RN", "CC"):
        assert paths.label_mask(label).exists()
    assert not np.asarray(nib.load(paths.slab).dataobj).any()
    manual = replace(job, options=InferenceOptions(progress=False, slab_from="manual",
                                                   overwrite=True))  # fmt: skip
    row = run_subject([segmenter], manual, "001")["row"]
    assert row["slab_source"] == "manual" and math.isfinite(row["slab_bottom_mm"])
    assert row["slab_top_mm"] - row["slab_bottom_mm"] == pytest.approx(2.0)  # 3 x 1 mm slices


def _atlas(rn_lowest: int = 11) -> AtlasStructures:
    """The constructed structures as an atlas would give them, the RN from ``rn_lowest``;
    the right side is x >= 20 (the midline)."""
    right = np.zeros(SHAPE, bool)
    right[20:] = True
    return AtlasStructures(_structures(rn_lowest), right)


def test_without_a_predicted_rn_the_atlas_rn_places_the_slab():
    found = localise(_prediction(_structures(rn_lowest=None)), SETTINGS, atlas=_atlas)
    assert found.from_atlas == ("RN left", "RN right")
    assert found.slab_source == "atlas" and not found.predicted_slab.found
    assert np.flatnonzero(found.slab.mask.any(axis=(0, 1))).tolist() == [8, 9, 10]
    np.testing.assert_array_equal(found.masks["RN"], _atlas().masks["RN"])
    flag = qc_flag(_row(found, _structures()), _prediction(_structures(None)), found, SETTINGS,
                   QualityLimits())  # fmt: skip
    assert flag.startswith("RN left, RN right from the registered atlas")
    assert "RN not found" not in flag
    unregistered = localise(_prediction(_structures(None)), SETTINGS, atlas=lambda: None)
    assert unregistered.slab_source == "predicted" and not unregistered.slab.found
    assert unregistered.from_atlas == ()


def test_the_network_keeps_what_lies_within_the_tolerance_of_the_atlas():
    # The network's RN starts 2 slices (2 mm) below the atlas's: kept at 4 mm, not at 1.5.
    near = localise(_prediction(_structures(9)), SETTINGS, atlas=_atlas, atlas_tolerance_mm=4.0)
    assert near.from_atlas == () and near.slab_source == "predicted"
    np.testing.assert_array_equal(near.masks["RN"], _structures(9)["RN"])
    strict = localise(_prediction(_structures(9)), SETTINGS, atlas=_atlas, atlas_tolerance_mm=1.5)
    assert strict.from_atlas == ("RN left", "RN right") and strict.slab_source == "atlas"


def test_one_side_far_from_the_atlas_is_replaced_on_that_side_only():
    masks = _structures(11)
    masks["SN"][:20] = np.roll(masks["SN"][:20], 12, axis=1)  # left SN 12 voxels = 6 mm back
    found = localise(_prediction(masks), SETTINGS, atlas=_atlas, atlas_tolerance_mm=4.0)
    assert found.from_atlas == ("SN left",) and found.slab_source == "predicted"
    np.testing.assert_array_equal(found.masks["SN"], _structures(11)["SN"])
    assert found.masks["SN"][20:].sum() == masks["SN"][20:].sum()  # the right is the network's


def _misregistered_atlas(rn_lowest: int = 9, shift_voxels: int = 4) -> AtlasStructures:
    """``_atlas`` whose registration is off by ``shift_voxels`` along y (0.5 mm each)."""
    atlas = _atlas(rn_lowest)
    return AtlasStructures({k: np.roll(m, shift_voxels, axis=1) for k, m in atlas.masks.items()},
                           atlas.right)  # fmt: skip


def test_an_atlas_off_by_one_translation_follows_the_networks_structures():
    # The atlas lies 2 mm behind every structure of the network: one shift explains them
    # all, and nothing is replaced even at a tolerance (1.5 mm) the shift alone exceeds.
    masks = _structures(9)
    shift = atlas_shift_mm(masks, _misregistered_atlas(), AFFINE)
    np.testing.assert_allclose(shift, [0.0, -2.0, 0.0])
    strict = {"atlas": _misregistered_atlas, "atlas_tolerance_mm": 1.5}
    found = localise(_prediction(masks), SETTINGS, **strict)
    assert found.from_atlas == () and found.slab_source == "predicted"
    # Without its RN the network's SN and CC still place the atlas; its RN fills in, in place.
    missing = localise(_prediction(_structures(None)), SETTINGS, **strict)
    assert missing.from_atlas == ("RN left", "RN right")
    np.testing.assert_array_equal(missing.masks["RN"], _structures(9)["RN"])


def test_structures_that_disagree_leave_the_atlas_where_registration_put_it():
    masks = _structures(9)
    masks["SN"] = np.roll(masks["SN"], -8, axis=1)  # the SN 4 mm forward
    masks["RN"] = np.roll(masks["RN"], 8, axis=1)  # the RN 4 mm back: only the CC's 2 sides agree
    assert atlas_shift_mm(masks, _atlas(9), AFFINE) is None
    assert atlas_shift_mm(_structures(None), _atlas(9), AFFINE) is not None  # SN, CC: 4 sides
    assert atlas_shift_mm({"SN": masks["SN"]}, _atlas(9), AFFINE) is None  # 2 sides only
