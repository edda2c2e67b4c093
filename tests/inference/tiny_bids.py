"""Tiny BIDS subjects built by hand and an untrained one-layer segmenter: the per-subject
path of sn-infer in milliseconds."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from torch import nn

from sn_platform.data.bids import chimap_path, echo_path
from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.inference.options import BatchJob, InferenceOptions
from sn_platform.inference.predictor import InferenceSettings, Segmenter

SHAPE = (12, 10, 4)
AFFINE = np.diag([0.5, 0.5, 1.0, 1.0])
ECHO_TIMES_S = (0.005, 0.010, 0.015)


def write_subject(root: Path, participant_id: str, seed: int = 0) -> list[Path]:
    """Three echoes (float32, RAS 0.5 x 0.5 x 1 mm) with sidecars and a chi map; the files."""
    rng = np.random.default_rng(seed)
    files = []
    for number, echo_time in enumerate(ECHO_TIMES_S, start=1):
        path = echo_path(root, participant_id, number)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = (100 * np.exp(-echo_time / 0.03) * (1 + rng.random(SHAPE))).astype(np.float32)
        nib.save(nib.Nifti1Image(data, AFFINE), path)
        sidecar = Path(str(path).replace(".nii.gz", ".json"))
        sidecar.write_text(json.dumps({"EchoTime": echo_time}))
        files += [path, sidecar]
    chimap = chimap_path(root, participant_id)
    nib.save(nib.Nifti1Image(rng.normal(0, 0.02, SHAPE).astype(np.float32), AFFINE), chimap)
    return [*files, chimap]


def write_participants(root: Path, participant_ids: list[str]) -> None:
    rows = [f"sub-{p}\t{'HC' if i % 2 else 'PD'}" for i, p in enumerate(participant_ids)]
    (root / "participants.tsv").write_text("participant_id\tgroup\n" + "\n".join(rows) + "\n")


def tiny_segmenter() -> Segmenter:
    """An untrained 3-echo, one-convolution network with 8 x 8 x 2 patches on CPU."""
    torch.manual_seed(0)
    spec = PreprocessingSpec(
        channels=("echo-1", "echo-2", "echo-3"), spacing_mm=None, min_shape=(8, 8, 2)
    )
    settings = InferenceSettings(patch_size=(8, 8, 2), patch_overlap=(0, 0, 0), batch_size=8)
    model = nn.Conv3d(3, 1, kernel_size=3, padding=1).eval()
    return Segmenter(model, spec, settings, torch.device("cpu"))


def tiny_job(root: Path, output: Path) -> BatchJob:
    return BatchJob(root, output, InferenceOptions(progress=False), label_source=None)
