"""The atlas localiser's template registration on phantom subjects: CPU seconds per
subject and the error of the atlas's SN and RN centroids, per side, against the subjects'
true structures (the registration and the nuclei atlas together); prints JSON.

    python benchmarks/registration.py --data data/phantom [--data data/phantom-unseen]
        [--sampling 0.1 0.1 0.1 --gradient-filters]   # the settings before v2

Every subject is registered afresh (no disk cache). CPU seconds are the process's, all of
ITK's threads together.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from report import emit, machine

from sn_platform.data.bids import label_path, load_volume, magnitude_path
from sn_platform.data.roi import mask_centre
from sn_platform.inference import atlas

STRUCTURES = ("SN", "RN")


def centroid_errors_mm(
    transform: sitk.Similarity3DTransform, root: Path, participant_id: str
) -> dict[str, float]:
    """Distance (mm) between the atlas's and the truth's centroid of each structure and
    side (sides split at the registered template's mid-sagittal plane); NaN where the
    atlas or the truth has none."""
    to_mni = atlas.similarity_to_mni(transform)
    errors = {}
    for label in STRUCTURES:
        truth, grid = load_volume(label_path(root, "truth", participant_id, label), "label")
        mapped = atlas.atlas_structures_on(to_mni, grid.shape, grid.affine)
        for side, on_side in (("left", ~mapped.right), ("right", mapped.right)):
            found, true = mapped.masks[label] & on_side, (truth > 0) & on_side
            if found.any() and true.any():
                found_mm, true_mm = mask_centre(found, grid.affine), mask_centre(true, grid.affine)
                gap = np.asarray(found_mm) - np.asarray(true_mm)
                errors[f"{label}_{side}"] = float(np.linalg.norm(gap))
            else:
                errors[f"{label}_{side}"] = float("nan")
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", required=True)
    parser.add_argument("--sampling", type=float, nargs=3, default=atlas.SAMPLING_PER_LEVEL)
    parser.add_argument("--gradient-filters", action="store_true")
    parser.add_argument("--minimum-step-mm", type=float, default=atlas.MINIMUM_STEP_MM)
    parser.add_argument("--minimum-samples", type=int, default=atlas.MINIMUM_SAMPLES)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--key", default="registration")
    arguments = parser.parse_args()
    atlas._template()  # read once, outside the timings
    subjects: list[dict[str, Any]] = []
    for root in arguments.data:
        for folder in sorted(root.glob("sub-*")):
            participant_id = folder.name.removeprefix("sub-")
            path = magnitude_path(root, participant_id)
            if path is None:
                sys.exit(f"registration.py: {folder}: no MEGRE echo 1 or NM image to register")
            image = sitk.Cast(sitk.ReadImage(str(path)), sitk.sitkFloat32)
            start = time.process_time()
            transform = atlas.register_template(
                image, sampling=tuple(arguments.sampling),
                gradient_filters=arguments.gradient_filters,
                minimum_step_mm=arguments.minimum_step_mm,
                minimum_samples=arguments.minimum_samples,
            )  # fmt: skip
            seconds = time.process_time() - start
            errors = centroid_errors_mm(transform, root, participant_id)
            subjects.append({"subject": f"{root.name}/{participant_id}",
                             "cpu_seconds": round(seconds, 2), **errors})  # fmt: skip
    columns = [f"{label}_{side}" for label in STRUCTURES for side in ("left", "right")]
    errors_mm = np.array([[s[column] for column in columns] for s in subjects])
    cpu_seconds = float(np.mean([s["cpu_seconds"] for s in subjects]))
    emit(
        {
            "benchmark": "template_registration",
            "machine": machine(),
            "sampling_per_level": list(arguments.sampling),
            "gradient_filters": arguments.gradient_filters,
            "minimum_step_mm": arguments.minimum_step_mm,
            "minimum_samples": arguments.minimum_samples,
            "subjects": len(subjects),
            "cpu_seconds_per_subject": round(cpu_seconds, 2),
            "centroid_error_mm": {
                "median": round(float(np.nanmedian(errors_mm)), 2),
                "p90": round(float(np.nanpercentile(errors_mm, 90)), 2),
                "max": round(float(np.nanmax(errors_mm)), 2),
                "missing": int(np.isnan(errors_mm).sum()),
            },
            "per_subject": subjects,
        },
        arguments.output,
        arguments.key,
    )


if __name__ == "__main__":
    main()
