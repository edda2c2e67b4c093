"""PNG montage of a phantom subject: echoes 1-3, QSM, echo 1 with labels, the whole FOV."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle
from numpy.typing import NDArray

from sn_platform.data.orientation import canonical_array
from sn_platform.data.slab import slab_below
from sn_platform.phantom.generator import SimulatedSubject

OUTLINES = (
    ("SN", "red"),
    ("rater 1 SN", "lime"),
    ("SNpc", "yellow"),
    ("N1", "cyan"),
    ("RN", "magenta"),
    ("CC", "dodgerblue"),
    ("STN", "orange"),
)
# In-plane margin (mm) of the zoomed panels around the SN, RN, STN and crus.
ZOOM_MARGIN_MM = 12.0


def save_montage(subject: SimulatedSubject, path: Path, n_slices: int = 3) -> None:
    """Save a montage, radiological view: the slab below the RN, then a slice through the STN.

    Columns, zoomed on the midbrain: echo 1, 2, 3, QSM (-0.1..0.25 ppm), and echo 1 with
    the true SN (red), rater 1's SN (green), SNpc (yellow), nigrosome-1 (cyan), RN
    (magenta), crus cerebri (blue) and STN (orange) outlined; last, echo 1 over the whole
    field of view with the zoomed window.
    """
    affine = subject.affine
    echoes = [canonical_array(e, affine).astype(float) for e in subject.echoes[:3]]
    chi = canonical_array(subject.chi_ppm, affine)
    masks = {name: canonical_array(m, affine).astype(bool) for name, m in subject.truth.items()}
    masks["rater 1 SN"] = canonical_array(subject.tracings["manual"]["SN"], affine).astype(bool)
    slices = slab_below(masks["RN"], n_slices) + _middle_slice(masks["STN"])
    if not slices:
        slices = list(np.linspace(0, chi.shape[2] - 1, n_slices + 2).astype(int)[1:-1])
    voxel_mm = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    window = _zoom_window(masks, voxel_mm)
    level = float(np.percentile(echoes[0], 99.5))
    figure, axes = plt.subplots(len(slices), 6, figsize=(15, 2.6 * len(slices)), squeeze=False)
    plan = subject.plan
    figure.suptitle(
        f"sub-{plan.participant_id}  {plan.group}  site {plan.site.name}  SNR {plan.snr:.0f}  "
        f"NM contrast {plan.tissue.snpc_contrast:.2f}  chi_SN {plan.tissue.sn_chi:.3f} ppm",
        fontsize=10,
    )
    titles = ["echo 1 (NM)", "echo 2", "echo 3", "QSM (ppm)", "labels on echo 1", "echo 1, FOV"]
    for row, z in enumerate(slices):
        zoomed = [*(e[window][:, :, z] for e in echoes), chi[window][:, :, z]]
        panels = [*zoomed, echoes[0][window][:, :, z], echoes[0][:, :, z]]
        for column, panel in enumerate(panels):
            is_chi = column == 3
            _show(axes[row, column], panel, (-0.1, 0.25) if is_chi else (0.0, level))
            if row == 0:
                axes[row, column].set_title(titles[column], fontsize=9)
        for name, colour in OUTLINES:
            mask = masks[name][window][:, :, z]
            if mask.any():
                # Radiological convention: patient right on the left of the image.
                axes[row, 4].contour(
                    mask[::-1].T.astype(float), levels=[0.5], colors=colour, linewidths=0.7
                )
        _outline_window(axes[row, 5], window, chi.shape)
        axes[row, 0].set_ylabel(f"slice {z}", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)


def _middle_slice(mask: NDArray[np.bool_]) -> list[int]:
    """The middle axial slice of ``mask`` ([] when empty)."""
    occupied = np.flatnonzero(mask.any(axis=(0, 1)))
    return [int(occupied[occupied.size // 2])] if occupied.size else []


def _zoom_window(
    masks: dict[str, NDArray[np.bool_]], voxel_mm: NDArray[np.float64]
) -> tuple[slice, slice]:
    """In-plane window around the SN, RN, STN and crus, ZOOM_MARGIN_MM beyond them."""
    union = masks["SN"] | masks["RN"] | masks["STN"] | masks["CC"]
    window = []
    for axis in (0, 1):
        occupied = np.flatnonzero(union.any(axis=tuple(a for a in range(3) if a != axis)))
        extra = int(ZOOM_MARGIN_MM / voxel_mm[axis])
        low, high = (occupied[0], occupied[-1] + 1) if occupied.size else (0, union.shape[axis])
        window.append(slice(max(int(low) - extra, 0), min(int(high) + extra, union.shape[axis])))
    return (window[0], window[1])


def _show(axis: plt.Axes, panel: NDArray, limits: tuple[float, float]) -> None:
    """One panel in radiological view (patient right on the left), no ticks."""
    axis.imshow(panel[::-1].T, cmap="gray", origin="lower", vmin=limits[0], vmax=limits[1])
    axis.set_xticks([])
    axis.set_yticks([])


def _outline_window(axis: plt.Axes, window: tuple[slice, slice], shape: tuple[int, ...]) -> None:
    """Draw the zoomed window on a whole-FOV panel shown in radiological view."""
    x, y = window
    left = shape[0] - x.stop
    axis.add_patch(
        Rectangle(
            (left - 0.5, y.start - 0.5),
            x.stop - x.start,
            y.stop - y.start,
            fill=False,
            edgecolor="yellow",
            linewidth=0.8,
        )
    )
