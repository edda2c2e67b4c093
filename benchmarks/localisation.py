"""The fully automatic pipeline's figures from a finished ``sn-infer`` run on a held-out cohort
whose labels were kept apart (``labels_root=``); prints JSON.

    python benchmarks/localisation.py --output outputs/sn-infer/held-out --labels data/held-out

Share of subjects whose predicted slab is within one slice of the slab below rater 1's
RN; mean SN DSC in that slab against rater 1, beside rater 2's DSC against rater 1 in the
same slab (the inter-rater ceiling); Pearson r of both measures, automatic vs manual ROI;
subjects whose NM volume ratio is exactly 0 (and their truth's); Cohen's d (PD vs HC) of
both measures from the automatic, manual and truth ROIs and the automatic/truth ratio.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path
from typing import Any, cast

import nibabel as nib
import numpy as np

from sn_platform.data.bids import label_path
from sn_platform.data.slab import SlabRule
from sn_platform.evaluation import cohort
from sn_platform.evaluation.metrics import dice
from sn_platform.inference.bids_outputs import json_text

MEASURES = ("nm_volume_ratio", "chi_mean_ppm")


def _image(path: Path) -> nib.Nifti1Image:
    return cast(nib.Nifti1Image, nib.load(path))


def _mask(path: Path) -> np.ndarray:
    return np.asarray(_image(path).dataobj) > 0


def inter_rater_dice(labels: Path, participant_id: str, slab_mm: float = 3.0) -> float:
    """Rater 2's SN against rater 1's, inside the slab below rater 1's RN (``SlabRule``)."""
    rn_path = label_path(labels, "manual", participant_id, "RN")
    affine = _image(rn_path).affine
    slab = SlabRule(slab_mm).place({"RN": _mask(rn_path)}, affine)
    assert slab is not None
    slab_mask = slab.mask
    first = _mask(label_path(labels, "manual", participant_id, "SN")) & slab_mask
    second = _mask(label_path(labels, "manual2", participant_id, "SN")) & slab_mask
    return dice(second, first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True, help="sn-infer's output folder")
    parser.add_argument("--labels", type=Path, required=True, help="dataset with derivatives")
    arguments = parser.parse_args()
    with (arguments.output / "measures.tsv").open() as table:
        rows: list[dict[str, Any]] = [
            {k: (v if k in ("participant_id", "session_id", "group", "qc_flag", "roi_source",
                            "slab_source")
                 else float(v) if v not in ("", "n/a") else math.nan) for k, v in row.items()}
            for row in csv.DictReader(table, delimiter="\t")
        ]  # fmt: skip
    offsets = np.array([abs(r["slab_offset_slices"]) for r in rows])
    raters = [inter_rater_dice(arguments.labels, r["participant_id"][4:]) for r in rows]
    report = cohort.agreement_report(rows)
    figures: dict[str, object] = {
        "benchmark": "automatic_localisation",
        "subjects": len(rows),
        "groups": sorted({r["group"] for r in rows}),
        "roi_sources": sorted({r["roi_source"] for r in rows}),
        "qc_flagged": sum(r["qc_flag"] != "ok" for r in rows),
        "slab_within_one_slice": float(np.mean(offsets <= 1.0)),
        "slab_offsets": sorted(np.round(offsets, 2).tolist()),
        "sn_dsc_vs_rater1": float(np.nanmean([r["dsc"] for r in rows])),
        "rater2_dsc_vs_rater1": float(np.nanmean(raters)),
    }
    for measure in MEASURES:
        entry = report[measure]
        effects = entry["cohens_d"]
        zeros = [r for r in rows if r[measure] == 0]
        figures[measure] = {
            "pearson_r_auto_vs_manual": entry.get("pearson_r"),
            "icc_2_1": entry.get("icc_2_1"),
            "bias_vs_truth": {k: v for k, v in entry.items() if k.startswith("bias_vs_truth")},
            "cohens_d": effects,
            "d_auto_over_truth": effects["automatic"] / effects["truth"]
            if effects.get("truth")
            else None,
            "subjects_at_zero": len(zeros),
            "their_truth": [r.get(f"{measure}_truth") for r in zeros],
        }
    print(json_text(figures), end="")


if __name__ == "__main__":
    main()
