"""A trained model's per-label thresholds, chosen on subjects with drawn labels
(``trainer.calibrate_thresholds``) and carried by the logged model."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from itertools import chain

import numpy as np
from numpy.typing import NDArray

from sn_platform.data.bids import SubjectRecord, load_volume
from sn_platform.data.roi import mask_centre
from sn_platform.evaluation.thresholds import calibrate_thresholds
from sn_platform.inference.predictor import InferenceSettings, Segmenter, preprocess_record
from sn_platform.training.subjects import SubjectSplit, drawn_labels, scans_of

Masks = dict[str, NDArray[np.bool_]]
Probabilities = dict[str, NDArray[np.float32]]


def calibration_records(
    subjects: SubjectSplit, pseudo_label_source: str | None
) -> list[SubjectRecord]:
    """The subjects thresholds are chosen on: the validation subjects, else (a run on every
    development subject) the training subjects with the labels drawn on them (a teacher's
    masks, ``data.pseudo_label_source``, left out)."""
    if subjects.validation:
        return list(subjects.validation)
    return [_drawn_only(record, pseudo_label_source) for record in subjects.train]


def out_of_fold_records(
    subjects: SubjectSplit, folds: Sequence[int], pseudo_label_source: str | None
) -> list[list[SubjectRecord]]:
    """The validation subjects of each of ``folds`` (the subjects a fold model never saw),
    from the splits and records ``subjects`` already holds, with their drawn labels."""
    records = [_drawn_only(r, pseudo_label_source) for r in subjects.all]
    return [scans_of(records, subjects.splits.fold(fold)[1]) for fold in folds]


def _drawn_only(record: SubjectRecord, pseudo_label_source: str | None) -> SubjectRecord:
    """``record`` with the labels drawn on it alone (a teacher's masks left out)."""
    return replace(record, labels=drawn_labels(record, pseudo_label_source))


def drawn_label_cases(
    segmenter: Segmenter, records: Sequence[SubjectRecord]
) -> Iterator[tuple[Probabilities, Masks]]:
    """Per subject, ``segmenter``'s probability of each label on the native grid and the
    masks drawn; the network's box centred on the drawn labels (as in training), so that
    the thresholds answer for the segmentation, not for where a localiser put the box."""
    for record in records:
        volumes = {name: load_volume(path, "label") for name, path in record.labels.items()}
        drawn = {name: data > 0.5 for name, (data, _) in volumes.items()}
        geometry = next(iter(volumes.values()))[1]  # the labels share the images' grid
        centre = mask_centre(np.logical_or.reduce(list(drawn.values())), geometry.affine)
        subject = preprocess_record(record, segmenter.spec, None, centre)
        prediction = segmenter.predict_preprocessed(subject, geometry.shape, geometry.affine)
        yield {label: prediction.probability(label) for label in prediction.labels}, drawn


def calibrated_settings(
    settings: InferenceSettings, members: Sequence[tuple[Segmenter, Sequence[SubjectRecord]]]
) -> InferenceSettings:
    """``settings`` with each label's threshold chosen where its mean DSC is highest
    (``calibrate_thresholds``) over every segmenter's predictions of its records: one model
    and its calibration records, or a fold ensemble's members each with the subjects its
    fold held out (nnU-Net's out-of-fold habit). A label drawn on none keeps ``threshold``."""
    cases = chain.from_iterable(drawn_label_cases(s, records) for s, records in members)
    return replace(settings, label_thresholds=calibrate_thresholds(cases, settings.labels))


def threshold_metrics(settings: InferenceSettings) -> dict[str, float]:
    """``calibration/threshold_<label>`` of every label, as logged with a run."""
    return {f"calibration/threshold_{n}": settings.threshold_of(n) for n in settings.labels}
