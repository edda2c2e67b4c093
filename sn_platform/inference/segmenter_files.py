"""A segmenter's files: its bundle (plain data: network, preprocessing, inference settings)
and its weights, what a logged model and a tracking journal store, and how a segmenter is
rebuilt from them anywhere."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.inference.predictor import InferenceSettings, Segmenter
from sn_platform.models.factory import build_module


def segmenter_bundle(
    model_config: Mapping[str, Any], spec: PreprocessingSpec, settings: InferenceSettings
) -> dict[str, Any]:
    """Plain data (JSON) of a segmenter: the network's ``_target_`` and arguments, its
    preprocessing, its inference settings, channels and labels."""
    return {
        "model": dict(model_config),
        "preprocessing": spec.to_dict(),
        "inference": settings.to_dict(),
        "channels": list(spec.channels),
        "labels": list(settings.labels),
    }


def save_weights(model: torch.nn.Module, path: Path) -> Path:
    """The network's weights (CPU tensors only) at ``path``."""
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
    return path


def load_segmenter_files(
    bundle: Mapping[str, Any], weights: Path, device: torch.device
) -> Segmenter:
    """The segmenter of a bundle (``segmenter_bundle``) and its weights file, on ``device``
    in evaluation mode; the weights load as tensors only (``weights_only``)."""
    model = build_module(bundle["model"])
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return Segmenter(
        model.to(device).eval(),
        PreprocessingSpec.from_dict(bundle["preprocessing"]),
        InferenceSettings.from_dict(bundle["inference"]),
        device,
        config=dict(bundle["model"]),
    )
