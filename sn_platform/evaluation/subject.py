"""One subject's automatic SN mask against its manual (and truth) labels, on the native grid.

DSC, HD95, volumes, slices in agreement, and the method's NM volume ratio and mean
susceptibility from the automatic and the manual ROI. Used by training validation,
sweeps and batch inference alike.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sn_platform.data.bids import Geometry, SubjectRecord, check_same_grid, load_volume
from sn_platform.evaluation import measures, metrics

MEASURES = ("nm_volume_ratio", "chi_mean_ppm")
# Short names in metric keys, e.g. ``val/nm_ratio_pearson_r``.
MEASURE_METRIC_NAMES = {"nm_volume_ratio": "nm_ratio", "chi_mean_ppm": "chi_mean"}


@dataclass(frozen=True)
class ReferenceCase:
    """What a prediction of one subject is compared with, on the subject's native grid.

    ``echo1`` (X, Y, Z) magnitude, ``chi`` (X, Y, Z) QSM in ppm or None, ``manual`` and
    ``truth`` (X, Y, Z) bool or None, ``affine`` (4, 4) mm.
    """

    participant_id: str
    group: str
    affine: NDArray[np.float64]
    echo1: NDArray[np.float64]
    chi: NDArray[np.float64] | None
    manual: NDArray[np.bool_] | None
    truth: NDArray[np.bool_] | None

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size (mm) along the stored axes."""
        return Geometry(self.echo1.shape, self.affine).voxel_mm


def load_reference_case(
    record: SubjectRecord, label: str = "SN", truth_path: Path | None = None
) -> ReferenceCase:
    """Read echo 1, the QSM map and the labels of a subject (all checked to share one grid)."""
    echo1, geometry = load_volume(record.echoes[0])

    def read(path: Path | None, kind: str) -> NDArray[np.float64] | None:
        if path is None:
            return None
        data, other = load_volume(path, kind)
        check_same_grid(path, other, geometry, tolerance_mm=1e-3)
        return data

    manual = read(record.labels.get(label), "label")
    truth = read(truth_path if truth_path is not None and truth_path.exists() else None, "label")
    return ReferenceCase(
        participant_id=record.participant_id,
        group=record.group or "n/a",
        affine=geometry.affine,
        echo1=echo1,
        chi=read(record.chimap, "image"),
        manual=None if manual is None else manual > 0.5,
        truth=None if truth is None else truth > 0.5,
    )


def _quiet(function: Any, *args: Any) -> float:
    """A measure whose undefined cases (empty ROI) are NaN, without a warning per subject."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(function(*args))


def subject_measures(case: ReferenceCase, roi: NDArray[np.bool_]) -> dict[str, float]:
    """NM volume ratio (echo 1) and mean susceptibility (ppm) of ``roi``."""
    chi = float("nan") if case.chi is None else _quiet(measures.chi_mean_ppm, case.chi, roi)
    return {
        "nm_volume_ratio": _quiet(measures.nm_volume_ratio, case.echo1, roi),
        "chi_mean_ppm": chi,
    }


def _overlap(
    prediction: NDArray[np.bool_], reference: NDArray[np.bool_], spacing: Sequence[float]
) -> tuple[float, float]:
    return metrics.dice(prediction, reference), metrics.hausdorff_95_mm(
        prediction, reference, spacing
    )


def evaluate_case(
    case: ReferenceCase, prediction: NDArray[np.bool_], field_of_view: NDArray[np.bool_]
) -> dict[str, Any]:
    """One row of the per-subject table.

    The manual and truth labels are compared inside ``field_of_view`` (the slab the
    network saw); volumes in mm^3, distances in mm.
    """
    spacing = case.spacing_mm
    axis = axial_axis(case.affine)
    left, right = metrics.hemisphere_volumes_mm3(prediction, case.affine)
    row: dict[str, Any] = {
        "participant_id": f"sub-{case.participant_id}",
        "group": case.group,
        "sn_volume_mm3": metrics.volume_mm3(prediction, spacing),
        "sn_volume_left_mm3": left,
        "sn_volume_right_mm3": right,
        **subject_measures(case, prediction),
    }
    if case.manual is not None:
        manual = case.manual & field_of_view
        dsc, hd95 = _overlap(prediction, manual, spacing)
        manual_measures = subject_measures(case, manual)
        row |= {
            "dsc": dsc,
            "hd95_mm": hd95,
            "manual_volume_mm3": metrics.volume_mm3(manual, spacing),
            "slices_in_agreement": metrics.slices_in_agreement(
                prediction, manual, _slices_with(field_of_view, axis), axis=axis
            ),
            "nm_volume_ratio_manual": manual_measures["nm_volume_ratio"],
            "chi_mean_ppm_manual": manual_measures["chi_mean_ppm"],
        }
    if case.truth is not None:
        truth = case.truth & field_of_view
        dsc_truth, hd95_truth = _overlap(prediction, truth, spacing)
        row |= {"dsc_truth": dsc_truth, "hd95_truth_mm": hd95_truth}
    return row


def axial_axis(affine: NDArray[np.float64]) -> int:
    """Voxel axis closest to the world's inferior-superior axis."""
    return int(np.argmax(np.abs(affine[2, :3]) / np.linalg.norm(affine[:3, :3], axis=0)))


def _slices_with(mask: NDArray[np.bool_], axis: int) -> list[int]:
    """Indices along ``axis`` of the slices where ``mask`` has a voxel."""
    others = tuple(a for a in range(3) if a != axis)
    return [int(i) for i in np.flatnonzero(mask.any(axis=others))]
