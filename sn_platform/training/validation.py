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
from sn_platform.evaluation.settings import MeasureSettings
from sn_platform.evaluation.subject import ReferenceCase, evaluate_case, load_reference_case
from sn_platform.inference.localise import localise
from sn_platform.inference.predictor import InferenceSettings, Segmenter
from sn_platform.runtime import Runtime


class Validator:
    """Predicts and evaluates a fixed set of subjects; inputs are preprocessed once.

    Parameters
    ----------
    records : subjects with their manual labels (SN; RN and CC place and measure the
        manual ROI)
    spec, settings : preprocessing and inference settings of the model
    runtime : device and precision, the same as training's
    truth_paths : optional truth labels per subject id, label -> file (phantom data)
    measures : how the clinical measures are taken
    prefix : metric prefix (``val``, ``test``)
    """

    def __init__(
        self,
        records: Sequence[SubjectRecord],
        spec: PreprocessingSpec,
        settings: InferenceSettings,
        runtime: Runtime,
        truth_paths: Mapping[str, Mapping[str, Path]] | None = None,
        measures: MeasureSettings | None = None,
        prefix: str = "val",
    ):
        truth_paths = truth_paths or {}
        self.spec, self.settings, self.runtime, self.prefix = spec, settings, runtime, prefix
        self.measures = measures or MeasureSettings()
        self.cases: dict[str, ReferenceCase] = {
            r.participant_id: load_reference_case(r, truth_paths.get(r.participant_id))
            for r in records
        }
        transform = spec.transform()
        self.inputs: dict[str, tio.Subject] = {
            r.participant_id: transform(make_subject(r, spec)) for r in records
        }

    def evaluate(self, model: nn.Module) -> Evaluation:
        """Predict every subject onto its native grid, place its slab below the predicted
        RN, and compare with its references (as sn-infer does)."""
        segmenter = Segmenter(
            model, self.spec, self.settings, self.runtime.device, self.runtime.precision
        )
        rows, masks = [], {}
        for participant_id, case in self.cases.items():
            prediction = segmenter.predict_preprocessed(
                self.inputs[participant_id], case.echo1.shape, case.affine
            )
            found = localise(prediction, self.settings)
            masks[participant_id] = found.masks["SN"]
            rows.append(
                evaluate_case(case, found.masks, found.slab, self.measures, self.settings.slab_rule)
            )
        return Evaluation(rows, summarise(rows, self.prefix), masks)

    def __call__(self, model: nn.Module) -> dict[str, float]:
        """Cohort metrics only: the engine's ``validate`` callback."""
        return self.evaluate(model).metrics
