"""One subject's automatic masks against its manual (and truth) labels, on the native grid.

DSC, HD95, volumes, slices in agreement, the slab offset, and the method's NM volume
ratio and mean susceptibility from the automatic, manual and truth ROIs, in the slab
and over the whole SN. Used by training validation,
sweeps and batch inference alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sn_platform.data.bids import (
    Geometry,
    SubjectRecord,
    check_same_grid,
    load_volume,
    scan_columns,
)
from sn_platform.data.slab import Slab, SlabRule, axial_axis
from sn_platform.evaluation import metrics
from sn_platform.evaluation.reference import roi_measures
from sn_platform.evaluation.settings import MeasureSettings

# The ROI's measures in the slab (the method's; unsuffixed) and over the whole SN.
MEASURES = ("nm_volume_ratio", "chi_mean_ppm", "nm_volume_ratio_whole", "chi_mean_ppm_whole")
# Short names in metric keys, e.g. ``val/nm_ratio_pearson_r``.
MEASURE_METRIC_NAMES = {
    "nm_volume_ratio": "nm_ratio",
    "chi_mean_ppm": "chi_mean",
    "nm_volume_ratio_whole": "nm_ratio_whole",
    "chi_mean_ppm_whole": "chi_mean_whole",
}
SN = "SN"


def structure_dsc_key(label: str) -> str:
    """The row key of a structure's DSC: ``dsc`` for the SN (compared in the slab),
    ``dsc_<label>`` in lower case for the others (``dsc_rn``, ``dsc_cc``; whole volume)."""
    return "dsc" if label == SN else f"dsc_{label.lower()}"


@dataclass(frozen=True)
class ReferenceCase:
    """What a prediction of one scan (``scan``: ``bids.scan_id``) is compared with, on its
    native grid.

    ``image`` (X, Y, Z) the first channel (the grid; shown in QC panels), ``nm`` (X, Y, Z)
    the NM-weighted image the NM volume ratio is taken on or None (a QSM-only model),
    ``chi`` (X, Y, Z) QSM in ppm or None, ``manual`` and
    ``truth`` label name (SN, RN, CC) -> (X, Y, Z) bool, only the labels that exist;
    ``affine`` (4, 4) mm.
    """

    scan: str
    group: str
    affine: NDArray[np.float64]
    image: NDArray[np.float64]
    nm: NDArray[np.float64] | None
    chi: NDArray[np.float64] | None
    manual: Mapping[str, NDArray[np.bool_]] = field(default_factory=dict)
    truth: Mapping[str, NDArray[np.bool_]] = field(default_factory=dict)

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size (mm) along the stored axes."""
        return Geometry(self.image.shape, self.affine).voxel_mm


def load_reference_case(
    record: SubjectRecord, truth_paths: Mapping[str, Path] | None = None
) -> ReferenceCase:
    """Read the first channel, the NM-weighted image, the QSM map, the record's (manual)
    labels and the truth labels of a subject (all checked to share one grid)."""
    image, geometry = load_volume(record.grid_image)

    def read(path: Path, kind: str) -> NDArray[np.float64]:
        if path == record.grid_image:  # the NM image or the Chimap is the first channel
            return image
        data, other = load_volume(path, kind)
        check_same_grid(path, other, geometry, tolerance_mm=1e-3)
        return data

    def masks(paths: Mapping[str, Path]) -> dict[str, NDArray[np.bool_]]:
        return {name: read(path, "label") > 0.5 for name, path in paths.items() if path.exists()}

    return ReferenceCase(
        scan=record.scan,
        group=record.group or "n/a",
        affine=geometry.affine,
        image=image,
        nm=None if record.nm_image is None else read(record.nm_image, "image"),
        chi=None if record.chimap is None else read(record.chimap, "image"),
        manual=masks(record.labels),
        truth=masks(truth_paths or {}),
    )


def _roi_measures(
    case: ReferenceCase,
    labels: Mapping[str, NDArray[np.bool_]],
    reference: NDArray[np.bool_] | None,
    slab: Slab,
    settings: MeasureSettings,
    suffix: str = "",
) -> dict[str, float]:
    """Measures of ``labels["SN"]`` in the slab (unsuffixed) and whole, each name + suffix."""
    roi = labels[SN]
    in_slab = roi_measures(case.nm, case.chi, roi, reference, slab.mask, settings)
    whole = roi_measures(case.nm, case.chi, roi, reference, None, settings)
    return {f"{k}{suffix}": v for k, v in in_slab.items()} | {
        f"{k}_whole{suffix}": v for k, v in whole.items()
    }


def _overlap(
    prediction: NDArray[np.bool_], reference: NDArray[np.bool_], spacing: Sequence[float]
) -> tuple[float, float]:
    return metrics.dice(prediction, reference), metrics.hausdorff_95_mm(
        prediction, reference, spacing
    )


def evaluate_case(
    case: ReferenceCase,
    predicted: Mapping[str, NDArray[np.bool_]],
    slab: Slab,
    settings: MeasureSettings | None = None,
    rule: SlabRule | None = None,
) -> dict[str, Any]:
    """One row of the per-subject table.

    Parameters
    ----------
    case : the subject's images and reference labels
    predicted : label name -> (X, Y, Z) bool, the automatic masks (SN; RN and CC where
        the model has them)
    slab : the slab the automatic measures use (from the predicted RN, or the manual one)
    settings : the measures' reference region and QSM threshold
    rule : how manual and truth slabs are placed from their own RN

    The automatic ROI is the predicted SN in ``slab`` with the predicted CC as reference;
    the manual (truth) ROI is the manual (truth) SN in the slab below the manual (truth)
    RN with the manual (else truth) CC. DSC and HD95 compare both inside the manual
    (truth) slab, where it exists. Volumes in mm^3, distances in mm.
    """
    settings, rule = settings or MeasureSettings(), rule or SlabRule()
    spacing = case.spacing_mm
    reference = settings.reference_label
    sn = predicted[SN]
    left, right = metrics.hemisphere_volumes_mm3(sn & slab.mask, case.affine)
    row: dict[str, Any] = {
        **scan_columns(case.scan),
        "group": case.group,
        "sn_volume_mm3": metrics.volume_mm3(sn & slab.mask, spacing),
        "sn_volume_left_mm3": left,
        "sn_volume_right_mm3": right,
        "sn_volume_whole_mm3": metrics.volume_mm3(sn, spacing),
        **_roi_measures(case, predicted, predicted.get(reference), slab, settings),
        **{
            f"{name.lower()}_volume_mm3": metrics.volume_mm3(mask, spacing)
            for name, mask in predicted.items()
            if name != SN
        },
    }
    manual_slab = rule.place(case.manual, case.affine)
    if manual_slab is not None:
        row["slab_offset_slices"] = slab.offset_slices(manual_slab)
    if SN in case.manual:
        compared = manual_slab if manual_slab is not None and manual_slab.found else slab
        manual = case.manual[SN] & compared.mask
        dsc, hd95 = _overlap(sn & compared.mask, manual, spacing)
        manual_reference = case.manual.get(reference, case.truth.get(reference))
        row |= {
            "dsc": dsc,
            "hd95_mm": hd95,
            "manual_volume_mm3": metrics.volume_mm3(manual, spacing),
            "slices_in_agreement": metrics.slices_in_agreement(
                sn & compared.mask,
                manual,
                _slices_with(compared.mask, axial_axis(case.affine)),
                axis=axial_axis(case.affine),
            ),
            **_roi_measures(case, case.manual, manual_reference, compared, settings, "_manual"),
        }
    for name in sorted(set(predicted) & set(case.manual) - {SN}):
        row[structure_dsc_key(name)] = metrics.dice(predicted[name], case.manual[name])
    if SN in case.truth:
        truth_slab = rule.place(case.truth, case.affine)
        compared = truth_slab if truth_slab is not None and truth_slab.found else slab
        truth = case.truth[SN] & compared.mask
        dsc_truth, hd95_truth = _overlap(sn & compared.mask, truth, spacing)
        row |= {
            "dsc_truth": dsc_truth,
            "hd95_truth_mm": hd95_truth,
            **_roi_measures(case, case.truth, case.truth.get(reference), compared, settings,
                            "_truth"),
        }  # fmt: skip
    return row


def _slices_with(mask: NDArray[np.bool_], axis: int) -> list[int]:
    """Indices along ``axis`` of the slices where ``mask`` has a voxel."""
    others = tuple(a for a in range(3) if a != axis)
    return [int(i) for i in np.flatnonzero(mask.any(axis=others))]
