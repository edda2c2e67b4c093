"""Sanity figures of a phantom cohort, measured from the written files (PHANTOM.md).

Run ``python -m sn_platform.phantom.summary DATASET`` to print them per group.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sn_platform.data.bids import (
    chimap_path,
    discover_subjects,
    echo_path,
    label_path,
    load_volume,
)
from sn_platform.data.channels import echo_channel
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


def subject_figures(root: Path, participant_id: str) -> dict[str, float]:
    """Sanity figures of one phantom subject from its files (needs derivatives/truth)."""
    echoes, times = [], []
    for number in range(1, 6):
        path = echo_path(root, participant_id, number)
        data, geometry = load_volume(path)
        echoes.append(data)
        sidecar = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
        times.append(sidecar["EchoTime"] * 1e3)
    chi, _ = load_volume(chimap_path(root, participant_id))
    truth = {
        name: load_volume(label_path(root, "truth", participant_id, name), "label")[0].astype(bool)
        for name in TRUTH_LABELS
    }
    rater_dsc = {
        name: dice(
            *(
                load_volume(label_path(root, source, participant_id, name), "label")[0]
                for source in RATER_SOURCES
            )
        )
        for name in RATER_LABELS
    }
    voxel = float(np.prod(geometry.voxel_mm))
    sn, n1 = truth["SN"], truth["N1"]
    late = [
        float(echoes[k][n1].mean() / echoes[k][sn & ~n1].mean() - 1.0) if n1.any() else np.nan
        for k in (2, 3, 4)
    ]
    return {
        "sn_volume_per_side_mm3": float(sn.sum() * voxel / 2),
        "snpc_volume_per_side_mm3": float(truth["SNpc"].sum() * voxel / 2),
        "chi_sn_ppm": float(chi[sn].mean()),
        "nm_contrast_snpc_crus": float(
            echoes[0][truth["SNpc"]].mean() / echoes[0][truth["CC"]].mean()
        ),
        "r2star_sn_per_s": fitted_r2star_per_s(
            np.array([e[sn].mean() for e in echoes]), np.array(times)
        ),
        "r2star_rn_per_s": fitted_r2star_per_s(
            np.array([e[truth["RN"]].mean() for e in echoes]), np.array(times)
        ),
        "n1_minus_sn_late_echoes": float(np.nanmean(late)) if n1.any() else float("nan"),
        "chi_stn_ppm": float(chi[truth["STN"]].mean()),
        "r2star_stn_per_s": fitted_r2star_per_s(
            np.array([e[truth["STN"]].mean() for e in echoes]), np.array(times)
        ),
        "rater_dsc": rater_dsc["SN"],
        "rater_dsc_rn": rater_dsc["RN"],
        "rater_dsc_cc": rater_dsc["CC"],
    }


def cohort_figures(root: Path | str) -> dict[str, dict[str, dict[str, float]]]:
    """Per group (HC, PD): mean, SD and n of every figure in ``FIGURES``."""
    root = Path(root)
    records = discover_subjects(
        root, channels=[echo_channel(n) for n in range(1, 6)], label_source=None
    )
    by_group: dict[str, list[dict[str, float]]] = {}
    for record in records:
        by_group.setdefault(record.group or "n/a", []).append(
            subject_figures(root, record.participant_id)
        )
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
    return f"{statistic['mean']:.3f} ± {statistic['sd']:.3f} (n={statistic['n']})"


if __name__ == "__main__":
    main()
