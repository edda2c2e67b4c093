"""What one training run is given: its typed settings (``RunSpec``) and where it sits
(``RunContext``). Built by ``training.assembly`` from the composed config, read by the run,
its checks and its tracking."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torchio as tio
from torch import nn

from sn_platform.data.settings import DataSettings
from sn_platform.evaluation.settings import MeasureSettings
from sn_platform.inference.predictor import InferenceSettings, Localiser, Segmenter
from sn_platform.tracking.settings import TrackingSettings
from sn_platform.training.settings import TrainerSettings

Report = Callable[[Mapping[str, float], int], None]


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs, typed: what ``conf/config.yaml`` composes, built.

    ``model`` stays plain data (``_target_`` and arguments) so the logged model can be
    rebuilt anywhere; ``config`` is the resolved config, logged as parameters and YAML;
    ``localiser`` the cascade's first stage (loaded from ``localiser_uri``), which centres
    the box of a model with a region of interest in validation and travels with the
    logged model; ``initial`` the logged model ``trainer.init_from`` names, whose weights
    the run starts from.
    """

    name: str
    seed: int
    data: DataSettings
    trainer: TrainerSettings
    inference: InferenceSettings
    measures: MeasureSettings
    tracking: TrackingSettings
    model: Mapping[str, Any]
    loss: nn.Module
    optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
    augmentation: tio.Transform | None
    config: Mapping[str, Any]
    localiser_uri: str | None = None
    localiser: Localiser | None = None
    initial: Segmenter | None = None


@dataclass(frozen=True)
class RunContext:
    """Where a run sits: its epoch callback, checkpoint folder and place in a sweep."""

    report: Report | None = None
    checkpoint_dir: Path | None = None
    parent_run_id: str | None = None
    run_key: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    tracking_patience_s: float = 0.0
