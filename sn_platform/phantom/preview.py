"""PNG montage of a phantom subject: echoes 1-3, QSM, and echo 1 with labels outlined."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from sn_platform.data.orientation import canonical_array
from sn_platform.data.slab import slab_below
from sn_platform.phantom.generator import SimulatedSubject

OUTLINES = (
    ("SN", "truth", "red"),
    ("manual", "rater 1", "lime"),
    ("SNpc", "truth", "yellow"),
    ("N1", "truth", "cyan"),
    ("RN", "truth", "magenta"),
)


def save_montage(subject: SimulatedSubject, path: Path, n_slices: int = 3) -> None:
    """Save a montage: one row per slice of the slab below the RN, radiological view.

    Columns: echo 1, 2, 3, QSM (-0.1..0.25 ppm), and echo 1 with the true SN (red),
    rater 1 (green), SNpc (yellow), nigrosome-1 (cyan) and RN (magenta) outlined.
    """
    affine = subject.affine
    echoes = [canonical_array(e, affine).astype(float) for e in subject.echoes[:3]]
    chi = canonical_array(subject.chi_ppm, affine)
    masks = {name: canonical_array(m, affine).astype(bool) for name, m in subject.truth.items()}
    masks["manual"] = canonical_array(subject.manual, affine).astype(bool)
    slices = slab_below(masks["RN"], n_slices)
    if not slices:
        slices = list(np.linspace(0, chi.shape[2] - 1, n_slices + 2).astype(int)[1:-1])
    window = float(np.percentile(echoes[0], 99.5))
    figure, axes = plt.subplots(len(slices), 5, figsize=(12.5, 2.6 * len(slices)), squeeze=False)
    plan = subject.plan
    figure.suptitle(
        f"sub-{plan.participant_id}  {plan.group}  site {plan.site.name}  SNR {plan.snr:.0f}  "
        f"NM contrast {plan.tissue.snpc_contrast:.2f}  chi_SN {plan.tissue.sn_chi:.3f} ppm",
        fontsize=10,
    )
    for row, z in enumerate(slices):
        panels = [*(e[:, :, z] for e in echoes), chi[:, :, z], echoes[0][:, :, z]]
        for column, panel in enumerate(panels):
            axis = axes[row, column]
            is_chi = column == 3
            # Radiological convention: patient right on the left of the image.
            axis.imshow(
                panel[::-1].T,
                cmap="gray",
                origin="lower",
                vmin=-0.1 if is_chi else 0.0,
                vmax=0.25 if is_chi else window,
            )
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(
                    ["echo 1 (NM)", "echo 2", "echo 3", "QSM (ppm)", "labels on echo 1"][column],
                    fontsize=9,
                )
        for name, _, colour in OUTLINES:
            mask = masks[name][:, :, z]
            if mask.any():
                axes[row, 4].contour(
                    mask[::-1].T.astype(float), levels=[0.5], colors=colour, linewidths=0.7
                )
        axes[row, 0].set_ylabel(f"slice {z}", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)
