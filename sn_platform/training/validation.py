"""Whole-volume validation of a model on subjects with reference labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torchio as tio
from torch import nn

from sn_platform.data.bids import SubjectRecord
from sn_platform.data.loaders import make_subject
from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.evaluation.cohort import Evaluation, summarise
from sn_platform.evaluation.subject import ReferenceCase, evaluate_case, load_reference_case
from sn_platform.inference.predictor import InferenceSettings, Segmenter
from sn_platform.runtime import Runtime


class Validator:
    """Predicts and evaluates a fixed set of subjects; inputs are preprocessed once.

    Parameters
    ----------
    records : subjects with their manual label
    spec, settings : preprocessing and inference settings of the model
    runtime : device and precision, the same as training's
    label : name of the manual label (SN)
    truth_paths : optional truth label per subject id (phantom data)
    prefix : metric prefix (``val``, ``test``)
    """

    def __init__(
        self,
        records: Sequence[SubjectRecord],
        spec: PreprocessingSpec,
        settings: InferenceSettings,
        runtime: Runtime,
        label: str = "SN",
        truth_paths: Mapping[str, Path] | None = None,
        prefix: str = "val",
    ):
        truth_paths = truth_paths or {}
        self.spec, self.settings, self.runtime, self.prefix = spec, settings, runtime, prefix
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
        segmenter = Segmenter(
            model, self.spec, self.settings, self.runtime.device, self.runtime.precision
        )
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
