"""Sanity figures of a phantom cohort, measured from the written files (PHANTOM.md), on
whatever images its protocol writes (MEGRE echoes, an NM slab, a Chimap).

Run ``python -m sn_platform.phantom.summary DATASET`` to print them per group.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sn_platform.data.bids import (
    channel_path,
    chimap_path,
    discover_subjects,
    echo_path,
    label_path,
    load_volume,
)
from sn_platform.data.channels import NM
from sn_platform.evaluation.metrics import dice
from sn_platform.phantom.generator import RATER_LABELS, RATER_SOURCES
from sn_platform.phantom.render import TRUTH_LABELS

FIGURES = (
    "sn_volume_per_side_mm3",
    "snpc_volume_per_side_mm3",
    "chi_sn_ppm",
    "nm_contrast_snpc_crus",
    "r2star_sn_per_s",
    "r2star_rn_per_s",
    "n1_minus_sn_late_echoes",
    "chi_stn_ppm",
    "r2star_stn_per_s",
    "rater_dsc",
    "rater_dsc_rn",
    "rater_dsc_cc",
)


def fitted_r2star_per_s(mean_signals: np.ndarray, echo_times_ms: np.ndarray) -> float:
    """R2* (1/s) from a log-linear fit of mean signal against TE (ms)."""
    slope = np.polyfit(np.asarray(echo_times_ms) * 1e-3, np.log(mean_signals), 1)[0]
    return float(-slope)


def _echo_series(root: Path, participant_id: str) -> tuple[list[np.ndarray], list[float]]:
    """The subject's MEGRE echo magnitudes that exist (echo 1, 2, ...) and their TEs (ms)."""
    echoes, times = [], []
    path = echo_path(root, participant_id, 1)
    while path.exists():
        echoes.append(load_volume(path)[0])
        sidecar = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
        times.append(sidecar["EchoTime"] * 1e3)
        path = echo_path(root, participant_id, len(echoes) + 1)
    return echoes, times


def _optional_image(path: Path) -> np.ndarray | None:
    return load_volume(path)[0] if path.exists() else None


def subject_figures(root: Path, participant_id: str) -> dict[str, float]:
    """Sanity figures of one phantom subject from its files (needs derivatives/truth).

    A figure whose images the subject's protocol lacks is NaN: R2* needs two or more MEGRE
    echoes, the N1 contrast echoes 3-5, chi a Chimap; the NM contrast is taken on the NM
    image (``acq-NM_T1w``), else on echo 1.
    """
    echoes, times = _echo_series(root, participant_id)
    chi = _optional_image(chimap_path(root, participant_id))
    nm = _optional_image(channel_path(root, participant_id, NM))
    nm = nm if nm is not None else (echoes[0] if echoes else None)
    masks = {
        name: load_volume(label_path(root, "truth", participant_id, name), "label")
        for name in TRUTH_LABELS
    }
    truth = {name: mask.astype(bool) for name, (mask, _) in masks.items()}
    rater_dsc = {
        name: dice(
            *(
                load_volume(label_path(root, source, participant_id, name), "label")[0]
                for source in RATER_SOURCES
            )
        )
        for name in RATER_LABELS
    }
    voxel = float(np.prod(masks["SN"][1].voxel_mm))
    sn, n1 = truth["SN"], truth["N1"]

    def r2star(region: np.ndarray) -> float:
        if len(echoes) < 2:
            return float("nan")
        return fitted_r2star_per_s(np.array([e[region].mean() for e in echoes]), np.array(times))

    late = [
        float(echoes[k][n1].mean() / echoes[k][sn & ~n1].mean() - 1.0)
        for k in (2, 3, 4)
        if k < len(echoes) and n1.any()
    ]
    nan = float("nan")
    return {
        "sn_volume_per_side_mm3": float(sn.sum() * voxel / 2),
        "snpc_volume_per_side_mm3": float(truth["SNpc"].sum() * voxel / 2),
        "chi_sn_ppm": float(chi[sn].mean()) if chi is not None else nan,
        "nm_contrast_snpc_crus": (
            float(nm[truth["SNpc"]].mean() / nm[truth["CC"]].mean()) if nm is not None else nan
        ),
        "r2star_sn_per_s": r2star(sn),
        "r2star_rn_per_s": r2star(truth["RN"]),
        "n1_minus_sn_late_echoes": float(np.mean(late)) if late else nan,
        "chi_stn_ppm": float(chi[truth["STN"]].mean()) if chi is not None else nan,
        "r2star_stn_per_s": r2star(truth["STN"]),
        "rater_dsc": rater_dsc["SN"],
        "rater_dsc_rn": rater_dsc["RN"],
        "rater_dsc_cc": rater_dsc["CC"],
    }


def cohort_figures(root: Path | str) -> dict[str, dict[str, dict[str, float]]]:
    """Per group (HC, PD): mean, SD and n of every figure in ``FIGURES``."""
    root = Path(root)
    records = discover_subjects(root, channels=(), label_source=None)
    by_group: dict[str, list[dict[str, float]]] = {}
    for record in records:
        by_group.setdefault(record.group or "n/a", []).append(subject_figures(root, record.scan))
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for group, rows in sorted(by_group.items()):
        summary[group] = {}
        for name in FIGURES:
            values = np.array([row[name] for row in rows], dtype=float)
            values = values[np.isfinite(values)]
            summary[group][name] = {
                "mean": float(values.mean()) if values.size else float("nan"),
                "sd": float(values.std(ddof=1)) if values.size > 1 else float("nan"),
                "n": int(values.size),
            }
    return summary


def main() -> None:
    """Print the cohort's sanity figures as a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset", type=Path)
    summary = cohort_figures(parser.parse_args().dataset)
    groups = list(summary)
    print(f"{'figure':26s}" + "".join(f"{g:>26s}" for g in groups))
    for name in FIGURES:
        cells = "".join(f"{_cell(summary[g][name]):>26s}" for g in groups)
        print(f"{name:26s}{cells}")


def _cell(statistic: dict[str, float]) -> str:
    if statistic["n"] == 0:
        return "n/a"
    return f"{statistic['mean']:.3f} ± {statistic['sd']:.3f} (n={statistic['n']})"


if __name__ == "__main__":
    main()
