"""Figures of an evaluation: auto-vs-manual scatter, Bland-Altman, and contour overlays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from numpy.typing import NDArray

from sn_platform.data.bids import scan_of_row
from sn_platform.data.orientation import canonical_array
from sn_platform.evaluation.measures import agreement
from sn_platform.evaluation.subject import MEASURES, ReferenceCase

TITLES = {
    "nm_volume_ratio": "NM volume ratio (slab)",
    "chi_mean_ppm": "mean susceptibility (ppm, slab)",
    "nm_volume_ratio_whole": "NM volume ratio (whole SN)",
    "chi_mean_ppm_whole": "mean susceptibility (ppm, whole SN)",
}


def _save(figure: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _pairs(rows: Sequence[Mapping[str, Any]], measure: str) -> tuple[NDArray, NDArray]:
    auto = np.array([r[measure] for r in rows], dtype=float)
    manual = np.array([r.get(f"{measure}_manual", np.nan) for r in rows], dtype=float)
    keep = np.isfinite(auto) & np.isfinite(manual)
    return auto[keep], manual[keep]


def save_agreement_scatter(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Automatic vs manual ROI for both measures, with the identity line and Pearson r."""
    figure, axes = plt.subplots(1, len(MEASURES), figsize=(5 * len(MEASURES), 4.4))
    for axis, measure in zip(axes, MEASURES, strict=True):
        auto, manual = _pairs(rows, measure)
        axis.scatter(manual, auto, s=18, color="tab:blue")
        both = np.concatenate([auto, manual])
        if both.size:
            low, high = float(both.min()), float(both.max())
            axis.plot([low, high], [low, high], "k--", linewidth=0.8, label="identity")
            axis.legend(loc="upper left", fontsize=8)
        stats = agreement(auto, manual)
        axis.set_title(f"{TITLES[measure]}: r = {stats.pearson_r:.3f} (n = {stats.n})")
        axis.set_xlabel("manual ROI")
        axis.set_ylabel("automatic ROI")
    _save(figure, path)


def save_bland_altman(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Bland-Altman plots (automatic - manual) with bias and 95 % limits of agreement."""
    figure, axes = plt.subplots(1, len(MEASURES), figsize=(5 * len(MEASURES), 4.4))
    for axis, measure in zip(axes, MEASURES, strict=True):
        auto, manual = _pairs(rows, measure)
        axis.scatter((auto + manual) / 2, auto - manual, s=18, color="tab:orange")
        stats = agreement(auto, manual)
        for value, style in (
            (stats.bland_altman_bias, "-"),
            (stats.loa_low, "--"),
            (stats.loa_high, "--"),
        ):
            if np.isfinite(value):
                axis.axhline(value, color="k", linestyle=style, linewidth=0.8)
        axis.set_title(
            f"{TITLES[measure]}: bias {stats.bland_altman_bias:.3g}, "
            f"LoA [{stats.loa_low:.3g}, {stats.loa_high:.3g}]",
            fontsize=9,
        )
        axis.set_xlabel("mean of automatic and manual")
        axis.set_ylabel("automatic - manual")
    _save(figure, path)


def _outline(axis: Any, mask: NDArray, colour: str) -> None:
    if mask.any():
        axis.contour(mask[::-1].T.astype(float), levels=[0.5], colors=colour, linewidths=0.8)


def _draw_axial(
    axis: Any,
    echo1: NDArray,
    affine: NDArray[np.float64],
    predicted: NDArray[np.bool_],
    manual: NDArray[np.bool_] | None,
    title: str,
    rank: int = 0,
) -> None:
    """Echo 1 on the axial slice with the ``rank``-th most ROI voxels, manual (green) and
    automatic (red) contours, radiological view (patient right on the image's left)."""
    image = canonical_array(echo1, affine)
    automatic = canonical_array(predicted.astype(np.uint8), affine) > 0
    reference = None if manual is None else canonical_array(manual.astype(np.uint8), affine) > 0
    union = automatic if reference is None else automatic | reference
    z = int(np.argsort(-union.sum(axis=(0, 1)), kind="stable")[rank])
    axis.imshow(
        image[::-1, :, z].T, cmap="gray", origin="lower", vmax=float(np.percentile(image, 99.5))
    )
    if reference is not None:
        _outline(axis, reference[:, :, z], "lime")
    _outline(axis, automatic[:, :, z], "red")
    axis.set_title(title, fontsize=9)
    axis.set_xticks([])
    axis.set_yticks([])


def save_overlays(
    rows: Sequence[Mapping[str, Any]],
    cases: Mapping[str, ReferenceCase],
    predictions: Mapping[str, NDArray[np.bool_]],
    path: Path,
) -> None:
    """Echo 1 with the manual (green) and automatic (red) contours of the best, median and
    worst subject by DSC, on the axial slice with the most ROI (radiological view).
    """
    ranked = sorted((r for r in rows if np.isfinite(r.get("dsc", np.nan))), key=lambda r: r["dsc"])
    if not ranked:
        return
    picks = {"best": ranked[-1], "median": ranked[len(ranked) // 2], "worst": ranked[0]}
    figure, axes = plt.subplots(1, 3, figsize=(12, 4.4), squeeze=False)
    for axis, (title, row) in zip(axes[0], picks.items(), strict=True):
        scan = scan_of_row(row)
        case = cases[scan]
        label = f"{title}: sub-{scan}  DSC {row['dsc']:.3f}"
        _draw_axial(axis, case.image, case.affine, predictions[scan], case.manual.get("SN"), label)
    figure.suptitle("first channel: manual (green) and automatic (red) SN", fontsize=10)
    _save(figure, path)


def save_selection_plot(
    leaderboard: Sequence[Mapping[str, Any]], keys: Sequence[str], path: Path
) -> None:
    """The selection score of every configuration against each searched hyperparameter."""
    keys = list(keys) or ["config_id"]
    figure, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.8), squeeze=False)
    scores = np.array([float(e["score"]) for e in leaderboard])
    for axis, key in zip(axes[0], keys, strict=True):
        values = [e.get(key) for e in leaderboard]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if numeric:
            axis.scatter(values, scores, color="tab:blue")
            if key.endswith("lr") or key.endswith("weight_decay"):
                axis.set_xscale("log")
        else:
            labels = sorted({str(v) for v in values})
            axis.scatter([labels.index(str(v)) for v in values], scores, color="tab:blue")
            axis.set_xticks(range(len(labels)), labels, rotation=20)
        axis.set_xlabel(key)
        axis.set_ylabel("selection score")
    best = leaderboard[0] if leaderboard else {}
    title = f"best: {best.get('config_id', 'n/a')}  score {best.get('score', np.nan):.4f}"
    if best.get("unlearnt"):
        title += f"  (not crowned: {best['unlearnt']})"
    figure.suptitle(title)
    _save(figure, path)


# Contour colours of the subject panel: automatic structures, the manual SN, the slab.
STRUCTURE_COLOURS = {"SN": "red", "RN": "yellow", "CC": "cyan"}
MANUAL_COLOUR = "lime"
PANEL_HALF_WIDTH_MM = 30.0


def _window(masks: Sequence[NDArray[np.bool_]], spacing: NDArray, shape: Sequence[int]) -> Any:
    """In-plane slices (X, Y) of a square of 2 x ``PANEL_HALF_WIDTH_MM`` around the masks'
    centre (the volume's centre when they are empty)."""
    union = np.logical_or.reduce([m.any(axis=2) for m in masks])
    centre = np.argwhere(union).mean(axis=0) if union.any() else (np.array(shape[:2]) - 1) / 2
    half = np.round(PANEL_HALF_WIDTH_MM / spacing[:2]).astype(int)
    low = np.clip(np.round(centre).astype(int) - half, 0, None)
    return slice(low[0], low[0] + 2 * half[0]), slice(low[1], low[1] + 2 * half[1])


def save_subject_panel(
    echo1: NDArray,
    chi: NDArray | None,
    affine: NDArray[np.float64],
    masks: Mapping[str, NDArray[np.bool_]],
    slab: NDArray[np.bool_],
    manual_sn: NDArray[np.bool_] | None,
    title: str,
    path: Path,
) -> None:
    """QC panel of one subject, zoomed on the midbrain (60 mm square): echo 1 (top) and
    QSM (bottom) on the slab's axial slices (or the SN's, when no slab was placed), with
    the automatic contours (SN red, RN yellow, CC cyan) and the manual SN (green);
    radiological view (patient right on the image's left)."""
    canonical = {k: canonical_array(m.astype(np.uint8), affine) > 0 for k, m in masks.items()}
    image = canonical_array(np.asarray(echo1, dtype=np.float32), affine)
    slab_c = canonical_array(slab.astype(np.uint8), affine) > 0
    manual = None if manual_sn is None else canonical_array(manual_sn.astype(np.uint8), affine) > 0
    layers = [("echo 1", image)]
    if chi is not None:
        layers.append(("QSM (ppm)", canonical_array(np.asarray(chi, dtype=np.float32), affine)))
    spacing = np.abs(canonical_voxel_mm(affine))
    window = _window(list(canonical.values()), spacing, image.shape)
    found = np.flatnonzero(slab_c.any(axis=(0, 1)))
    if found.size == 0 and "SN" in canonical and canonical["SN"].any():
        found = np.argsort(-canonical["SN"].sum(axis=(0, 1)), kind="stable")[:3]
    chosen = sorted(int(z) for z in found)[:3] or [image.shape[2] // 2]
    figure, axes = plt.subplots(
        len(layers), len(chosen), figsize=(3.4 * len(chosen), 3.4 * len(layers)), squeeze=False
    )
    for row, (name, volume) in enumerate(layers):
        crop = volume[window]
        limits = (np.percentile(crop, 1), np.percentile(crop, 99.5))
        for column, z in enumerate(chosen):
            axis = axes[row][column]
            axis.imshow(
                crop[::-1, :, z].T, cmap="gray", origin="lower", vmin=limits[0], vmax=limits[1]
            )
            for label, mask in canonical.items():
                _outline(axis, mask[window][:, :, z], STRUCTURE_COLOURS.get(label, "magenta"))
            if manual is not None:
                _outline(axis, manual[window][:, :, z], MANUAL_COLOUR)
            where = "slab" if slab_c[..., z].any() else "slice"
            axis.set_title(f"{name}, {where} z={z}", fontsize=9)
            axis.set_xticks([])
            axis.set_yticks([])
    figure.suptitle(title, fontsize=10)
    _save(figure, path)


def canonical_voxel_mm(affine: NDArray[np.float64]) -> NDArray[np.float64]:
    """Voxel sizes (mm) along the axes of the canonical (RAS) reordering of ``affine``."""
    sizes = np.linalg.norm(affine[:3, :3], axis=0)
    order = np.argmax(np.abs(affine[:3, :3]), axis=0)
    return np.asarray(sizes[np.argsort(order)], dtype=np.float64)


def save_effect_sizes(report: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    """Cohen's d (PD against HC) of both measures from each ROI (automatic, manual, truth)."""
    figure, axes = plt.subplots(1, len(MEASURES[:2]), figsize=(5 * 2, 3.6), squeeze=False)
    for axis, measure in zip(axes[0], MEASURES[:2], strict=True):
        effects = dict(report.get(measure, {}).get("cohens_d", {}))
        names = list(effects)
        axis.bar(
            names,
            [effects[n] for n in names],
            color=["tab:blue", "tab:green", "grey"][: len(names)],
        )
        axis.axhline(0.0, color="k", linewidth=0.8)
        axis.set_title(f"{TITLES[measure]}: Cohen's d PD - HC", fontsize=9)
        axis.set_ylabel("Cohen's d")
    _save(figure, path)
