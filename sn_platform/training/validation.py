"""Whole-volume validation of a model on subjects with reference labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchio as tio
from numpy.typing import NDArray
from torch import nn

from sn_platform.data.bids import SubjectRecord
from sn_platform.data.loaders import make_subject
from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.evaluation.subject import (
    ReferenceCase,
    evaluate_case,
    load_reference_case,
    summarise,
)
from sn_platform.inference.predictor import InferenceSettings, Segmenter


@dataclass
class Evaluation:
    """Per-subject rows, cohort metrics and the binary masks (native grid) behind them."""

    rows: list[dict[str, Any]]
    metrics: dict[str, float]
    masks: dict[str, NDArray[np.bool_]]


class Validator:
    """Predicts and evaluates a fixed set of subjects; inputs are preprocessed once.

    Parameters
    ----------
    records : subjects with their manual label
    spec, settings : preprocessing and inference settings of the model
    device : where to predict
    label : name of the manual label (SN)
    truth_paths : optional truth label per subject id (phantom data)
    prefix : metric prefix (``val``, ``test``)
    """

    def __init__(
        self,
        records: Sequence[SubjectRecord],
        spec: PreprocessingSpec,
        settings: InferenceSettings,
        device: torch.device,
        label: str = "SN",
        truth_paths: Mapping[str, Path] | None = None,
        prefix: str = "val",
        precision: str = "none",
    ):
        truth_paths = truth_paths or {}
        self.spec, self.settings, self.device, self.prefix = spec, settings, device, prefix
        self.precision = precision
        self.cases: dict[str, ReferenceCase] = {
            r.participant_id: load_reference_case(r, label, truth_paths.get(r.participant_id))
            for r in records
        }
        transform = spec.transform()
        self.inputs: dict[str, tio.Subject] = {
            r.participant_id: transform(make_subject(r, spec, label=None)) for r in records
        }

    def evaluate(self, model: nn.Module) -> Evaluation:
        """Predict every subject onto its native grid and compare with its references."""
        segmenter = Segmenter(model, self.spec, self.settings, self.device, self.precision)
        rows, masks = [], {}
        for participant_id, case in self.cases.items():
            prediction = segmenter.predict_preprocessed(
                self.inputs[participant_id], case.echo1.shape, case.affine
            )
            mask = prediction.mask(self.settings.threshold)
            masks[participant_id] = mask
            rows.append(evaluate_case(case, mask, prediction.field_of_view))
        return Evaluation(rows, summarise(rows, self.prefix), masks)

    def __call__(self, model: nn.Module) -> dict[str, float]:
        """Cohort metrics only: the engine's ``validate`` callback."""
        return self.evaluate(model).metrics
