"""Refuse a run that cannot work, on one line, before any image data is read."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from sn_platform.data.bids import Geometry, find_channel, find_scans
from sn_platform.data.channels import echo_channel
from sn_platform.devices import select_device
from sn_platform.errors import ConfigError, one_line
from sn_platform.training.spec import RunSpec

OPTIMISER_LIMITS = {"lr": "> 0", "weight_decay": ">= 0", "momentum": ">= 0"}


def _check(condition: bool, key: str, problem: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {problem}")


def canonical_extent_mm(path: Path) -> NDArray[np.float64]:
    """Field of view (mm) of an image along the R, A and S axes, from its header only."""
    image = cast(nib.Nifti1Image, nib.load(path))
    orientation = nib.io_orientation(image.affine)
    extent = np.zeros(3)
    zooms = Geometry(cast(tuple[int, int, int], image.shape[:3]), image.affine).voxel_mm
    for voxel_axis, (world_axis, _) in enumerate(orientation):
        extent[int(world_axis)] = image.shape[voxel_axis] * zooms[voxel_axis]
    return extent


def check_run(spec: RunSpec) -> None:
    """Check the data root, the optimiser, the device, the fold, the labels, and that the
    patch fits the preprocessed volumes (image headers only). Raises ``ConfigError`` (one
    line)."""
    data = spec.data
    _check(data.root is not None, "data.root", "not set; give data.root=/path/to/bids")
    root = Path(cast(str, data.root))
    _check(
        root.is_dir(),
        "data.root",
        f"{root} is not a folder; write the phantom there with `sn-phantom out={root}` "
        "or give data.root=/path/to/bids",
    )
    arguments = getattr(spec.optimizer, "keywords", {})
    for key, limit in OPTIMISER_LIMITS.items():
        if key in arguments:
            value = float(arguments[key])
            _check(
                value > 0 if limit == "> 0" else value >= 0,
                f"optim.{key}",
                f"invalid {value}; give a value {limit}",
            )
    try:
        select_device(spec.trainer.device)
    except (ValueError, RuntimeError) as error:  # torch: RuntimeError for an unknown type
        raise ConfigError(
            f"trainer.device: {one_line(error, 160)}; give auto, cpu, cuda or cuda:N"
        ) from None
    folds, fold = data.splits.folds, spec.trainer.fold
    _check(fold is None or 0 <= fold < folds, "trainer.fold", f"{fold} not in 0..{folds - 1}")
    preprocessing, patch = data.preprocessing, np.array(data.patch_size, dtype=float)
    _check(
        tuple(spec.inference.labels) == tuple(data.labels),
        "inference.labels",
        f"{list(spec.inference.labels)} differs from data.labels {list(data.labels)}",
    )
    if preprocessing.roi_mm is not None and preprocessing.spacing_mm is not None:
        box = np.array(preprocessing.roi_mm) / np.array(preprocessing.spacing_mm)
        _check(
            not (patch > np.round(box)).any(),
            "data.preprocessing.roi_mm",
            f"{list(preprocessing.roi_mm)} mm is {[round(v) for v in box]} voxels, "
            f"smaller than the patch {list(data.patch_size)}",
        )
    if preprocessing.spacing_mm is not None:
        echoes = (
            find_channel(root, scan, echo_channel(1), data.bids_filter) for scan in find_scans(root)
        )
        for echo in filter(None, echoes):
            voxels = canonical_extent_mm(echo) / np.array(preprocessing.spacing_mm)
            _check(
                not (patch[:2] > np.floor(voxels[:2]) + 1).any(),
                "data.patch_size",
                f"{list(data.patch_size)} is larger than the preprocessed volume "
                f"{[int(v) for v in voxels]} of {echo.name}",
            )
