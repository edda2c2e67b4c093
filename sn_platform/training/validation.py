"""Whole-volume validation of a model on subjects with reference labels."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torchio as tio
from torch import nn

from sn_platform.data.bids import SubjectRecord
from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.data.roi import mask_centre, structures_centre
from sn_platform.devices import Runtime
from sn_platform.evaluation.cohort import Evaluation, summarise
from sn_platform.evaluation.settings import MeasureSettings
from sn_platform.evaluation.subject import ReferenceCase, evaluate_case, load_reference_case
from sn_platform.inference.localise import localise
from sn_platform.inference.predictor import (
    InferenceSettings,
    Localiser,
    NativePrediction,
    Segmenter,
    preprocess_record,
)


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of ``model``'s state (every tensor's name, dtype, shape and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class Validator:
    """Predicts and evaluates a fixed set of subjects; inputs are preprocessed once, and
    weights it has just evaluated are not evaluated again (the final evaluation of a run
    whose best epoch was its last validation is that validation's).

    Parameters
    ----------
    records : subjects with their manual labels (SN; RN and CC place and measure the
        manual ROI)
    spec, settings : preprocessing and inference settings of the model
    runtime : device and precision, the same as training's
    truth_paths : optional truth labels per subject id, label -> file (phantom data)
    measures : how the clinical measures are taken
    prefix : metric prefix (``val``, ``test``)
    localiser : the cascade's first stage, which centres the box of a model with a region
        of interest (``spec.roi_mm``) as on new data; without one, the manual labels'
        centre does (the second stage evaluated alone)
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
        localiser: Localiser | None = None,
    ):
        truth_paths = truth_paths or {}
        self.spec, self.settings, self.runtime, self.prefix = spec, settings, runtime, prefix
        self.measures = measures or MeasureSettings()
        self.cases: dict[str, ReferenceCase] = {
            r.scan: load_reference_case(r, truth_paths.get(r.scan)) for r in records
        }
        self.localiser = localiser
        self.inputs: dict[str, tio.Subject] = {
            r.scan: preprocess_record(
                r, spec, localiser, None if localiser else self._labels_centre(r.scan)
            )
            for r in records
        }
        self._last: tuple[str, Evaluation] | None = None

    def _labels_centre(self, scan: str) -> np.ndarray | None:
        """World centre (mm) of a scan's manual labels (None without any)."""
        case = self.cases[scan]
        if not case.manual:
            return None
        return mask_centre(np.logical_or.reduce(list(case.manual.values())), case.affine)

    def evaluate(self, model: nn.Module) -> Evaluation:
        """Predict every subject onto its native grid, place its slab below the predicted
        RN, and compare with its references (as sn-infer does); the last evaluation
        again where ``model``'s weights are the ones it evaluated."""
        weights = weights_digest(model)
        if self._last is not None and self._last[0] == weights:
            return self._last[1]
        segmenter = Segmenter(
            model, self.spec, self.settings, self.runtime.device, self.runtime.precision,
            localiser=self.localiser,
        )  # fmt: skip
        rows, masks = [], {}
        for scan, case in self.cases.items():
            prediction = segmenter.predict_preprocessed(
                self.inputs[scan], case.image.shape, case.affine
            )
            found = localise(prediction, self.settings)
            masks[scan] = found.masks["SN"]
            row = evaluate_case(
                case, found.masks, found.slab, self.measures, self.settings.slab_rule
            )
            rows.append(row | self._centre_error(scan, prediction))
        evaluation = Evaluation(rows, summarise(rows, self.prefix), masks)
        self._last = (weights, evaluation)
        return evaluation

    def with_settings(self, settings: InferenceSettings) -> Validator:
        """This validator (the same subjects, preprocessed once) under other settings."""
        other = copy.copy(self)
        other.settings, other._last = settings, None
        return other

    def _centre_error(self, scan: str, prediction: NativePrediction) -> dict[str, float]:
        """``centre_error_mm``: distance (mm) between the centre of the structures the
        model found (``structures_centre``) and that of the manual labels; NaN when
        either has none."""
        reference = self._labels_centre(scan)
        foreground = prediction.probabilities.max(axis=0)
        centre = structures_centre(foreground, prediction.affine, self.settings.threshold)
        if reference is None or centre is None:
            return {"centre_error_mm": float("nan")}
        return {"centre_error_mm": float(np.linalg.norm(centre - reference))}

    def __call__(self, model: nn.Module) -> dict[str, float]:
        """Cohort metrics only: the engine's ``validate`` callback."""
        return self.evaluate(model).metrics
