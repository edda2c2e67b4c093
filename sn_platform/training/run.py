"""One training run from typed settings: check, build, train, evaluate the best weights, track.

``sn-train`` and every Ray Tune trial of ``sn-sweep`` call ``train_and_evaluate``; a
sweep's ensemble calls ``evaluate_ensemble``. Both evaluate and log through one function.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sn_platform.data.augment import reads_tissues
from sn_platform.data.batches import training_batches
from sn_platform.data.bids import SubjectRecord
from sn_platform.devices import Runtime
from sn_platform.errors import ConfigError
from sn_platform.evaluation.outputs import write_evaluation
from sn_platform.inference.predictor import Segmenter
from sn_platform.models.ensemble import ProbabilityEnsemble
from sn_platform.models.factory import build_module
from sn_platform.seeding import seed_everything
from sn_platform.tracking import BufferedRun
from sn_platform.training.calibration import (
    calibrated_settings,
    calibration_records,
    out_of_fold_records,
    threshold_metrics,
)
from sn_platform.training.checks import check_run
from sn_platform.training.engine import (
    BEST_WEIGHTS,
    LAST_CHECKPOINT,
    Progress,
    Trainer,
    load_best_weights,
    read_checkpoint,
)
from sn_platform.training.mlflow_run import RunOpening, log_model, tracked_run
from sn_platform.training.spec import Report, RunContext, RunSpec
from sn_platform.training.subjects import SubjectSplit, split_subjects, truth_label_paths
from sn_platform.training.validation import Validator


@dataclass
class TrainingOutcome:
    """What a run produced: final metrics (best weights), per-subject rows, the model.

    ``tracking_folder`` is the run's tracking journal; ``tracking_pending`` says the store
    does not have all of it yet (``sn-track sync`` of the folder delivers it).
    """

    metrics: dict[str, float]
    progress: Progress
    checkpoint_dir: Path
    run_id: str | None = None
    model_uri: str | None = None
    evaluations: dict[str, Any] = field(default_factory=dict)
    tracking_folder: Path | None = None
    tracking_pending: bool = False

    def tracked_by(self, tracker: BufferedRun | None) -> TrainingOutcome:
        """This outcome with the run id, model URI and delivery state of ``tracker``."""
        if tracker is not None:
            self.run_id, self.model_uri = tracker.run_id, tracker.model_uri
            self.tracking_folder = tracker.folder
            self.tracking_pending = tracker.journal.pending() > 0
        return self


def _prepare_checkpoints(directory: Path, resume: bool) -> dict[str, Any] | None:
    if resume:
        return read_checkpoint(directory)
    for name in (LAST_CHECKPOINT, BEST_WEIGHTS):
        (directory / name).unlink(missing_ok=True)
    return None


def _validator(
    spec: RunSpec, runtime: Runtime, records: Sequence[SubjectRecord], prefix: str
) -> Validator:
    """Whole-volume evaluation of ``records`` (against truth too, where the data has it)."""
    wanted = {*spec.data.labels, spec.inference.slab_reference, spec.measures.reference_label}
    truth = truth_label_paths(Path(str(spec.data.root)), records, sorted(wanted))
    return Validator(
        records, spec.data.preprocessing, spec.inference, runtime, truth, spec.measures, prefix,
        spec.localiser,
    )  # fmt: skip


def initial_model(spec: RunSpec) -> nn.Module:
    """The network a run starts from: random weights, or those of ``spec.initial``
    (``trainer.init_from``), which must read the same channels, predict the same labels and
    have the same architecture (every tensor's name and shape). Raises ``ConfigError``."""
    model = build_module(spec.model)
    start, uri = spec.initial, spec.trainer.init_from
    if start is None:
        return model
    for what, theirs, ours in (
        ("channels", start.spec.channels, spec.data.preprocessing.channels),
        ("labels", start.settings.labels, spec.data.labels),
    ):
        if tuple(theirs) != tuple(ours):
            raise ConfigError(
                f"trainer.init_from: {uri} reads {what} {list(theirs)}, this run {list(ours)}"
            )
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in start.model.state_dict().items()}
    if expected != found:
        differing = sorted(
            k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k)
        )
        raise ConfigError(
            f"trainer.init_from: {uri} is another architecture: {len(differing)} tensors differ, "
            f"first {differing[0]} {found.get(differing[0])} where this model has "
            f"{expected.get(differing[0])}"
        )
    model.load_state_dict(start.model.state_dict())
    return model


def train_and_evaluate(spec: RunSpec, context: RunContext | None = None) -> TrainingOutcome:
    """Train one model as ``spec`` says, evaluate its best weights, and track it.

    ``context`` places the run in a sweep (report callback, checkpoint folder, parent
    MLflow run, run key that a restarted trial reuses, extra tags).
    """
    context = context or RunContext()
    check_run(spec)
    runtime = Runtime.resolve(spec.trainer.device, spec.trainer.precision, spec.trainer.compile)
    seed_everything(spec.seed, spec.trainer.deterministic)
    model = initial_model(spec)
    subjects = split_subjects(spec.data, spec.trainer.fold, reads_tissues(spec.augmentation))
    directory = Path(context.checkpoint_dir or spec.trainer.checkpoint_dir)
    checkpoint = _prepare_checkpoints(directory, spec.trainer.resume)
    resume = checkpoint is not None
    with tracked_run(RunOpening(spec, subjects, runtime, context, directory, resume)) as tracker:
        outcome = _train(
            spec, model, runtime, subjects, directory, checkpoint, context.report, tracker
        )
    return outcome.tracked_by(tracker)


def _train(
    spec: RunSpec,
    model: nn.Module,
    runtime: Runtime,
    subjects: SubjectSplit,
    directory: Path,
    checkpoint: Mapping[str, Any] | None,
    report: Report | None,
    tracker: BufferedRun | None,
) -> TrainingOutcome:
    data = spec.data
    validate = (
        _validator(spec, runtime, subjects.validation, "val") if subjects.validation else None
    )
    trainer = Trainer(
        model,
        spec.loss,
        spec.optimizer(model.parameters()),
        data.preprocessing,
        spec.trainer,
        runtime,
        directory,
    )
    if checkpoint is not None:
        trainer.resume(checkpoint)

    def on_epoch(metrics: Mapping[str, float], epoch: int) -> None:
        if tracker is not None:
            tracker.log_metrics(metrics, epoch)
        if report is not None:
            report(metrics, epoch)

    batches = math.ceil(len(subjects.train) * data.samples_per_volume / data.batch_size)
    with training_batches(subjects.train, data, spec.augmentation, spec.seed) as epochs:
        progress = trainer.fit(epochs, validate, on_epoch, batches)
    load_best_weights(model, directory)
    outcome = TrainingOutcome({"best/epoch": float(progress.best_epoch)}, progress, directory)
    if spec.trainer.calibrate_thresholds:
        records = calibration_records(subjects, spec.data.pseudo_label_source)
        spec = _calibrated(spec, runtime, [(model, records)])
        outcome.metrics |= threshold_metrics(spec.inference)
        validate = validate.with_settings(spec.inference) if validate is not None else None
    evaluators = [validate] if validate is not None else []
    if spec.trainer.evaluate_test and subjects.test:
        evaluators.append(_validator(spec, runtime, subjects.test, "test"))
    _evaluate_and_log(spec, model, dict(spec.model), evaluators, outcome, tracker)
    return outcome


def _calibrated(
    spec: RunSpec, runtime: Runtime, members: Sequence[tuple[nn.Module, Sequence[SubjectRecord]]]
) -> RunSpec:
    """``spec`` whose inference settings carry per-label thresholds chosen on each network's
    predictions of its records (``trainer.calibrate_thresholds``)."""
    segmenters = [
        (Segmenter(network, spec.data.preprocessing, spec.inference, runtime.device,
                   runtime.precision), records)
        for network, records in members
    ]  # fmt: skip
    return replace(spec, inference=calibrated_settings(spec.inference, segmenters))


def evaluate_ensemble(
    spec: RunSpec,
    weight_files: Sequence[Path],
    context: RunContext | None = None,
    folds: Sequence[int] | None = None,
) -> TrainingOutcome:
    """The mean-probability ensemble of trained copies of ``spec.model`` (say, the fold
    models of a sweep's best configuration), evaluated on the test split, tracked and
    logged as one model like a training run. With ``trainer.calibrate_thresholds`` its
    per-label thresholds are chosen out of fold: each member (trained on fold ``folds[i]``)
    predicts the validation subjects of its fold."""
    context = context or RunContext()
    check_run(spec)
    runtime = Runtime.resolve(spec.trainer.device, spec.trainer.precision, spec.trainer.compile)
    subjects = split_subjects(spec.data, spec.trainer.fold)
    if not subjects.test:
        raise ConfigError("data.splits.test_fraction: an ensemble is evaluated on a test split")
    model = ProbabilityEnsemble(spec.model, len(weight_files))
    for network, path in zip(model.members, weight_files, strict=True):
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model = model.to(runtime.device)
    model_config = {"_target_": f"{ProbabilityEnsemble.__module__}.ProbabilityEnsemble",
                    "member": dict(spec.model), "count": len(weight_files)}  # fmt: skip
    metrics = {"ensemble/members": float(len(weight_files))}
    if spec.trainer.calibrate_thresholds:
        if folds is None or len(folds) != len(weight_files):
            raise ConfigError(
                "trainer.calibrate_thresholds: an ensemble needs the fold of each member"
            )
        held_out = out_of_fold_records(subjects, folds, spec.data.pseudo_label_source)
        spec = _calibrated(spec, runtime, list(zip(model.members, held_out, strict=True)))
        metrics |= threshold_metrics(spec.inference)
    directory = Path(context.checkpoint_dir or spec.trainer.checkpoint_dir)
    with tracked_run(RunOpening(spec, subjects, runtime, context, directory, False)) as tracker:
        outcome = TrainingOutcome(metrics, Progress(), directory)
        evaluator = _validator(spec, runtime, subjects.test, "test")
        _evaluate_and_log(spec, model, model_config, [evaluator], outcome, tracker)
    return outcome.tracked_by(tracker)


def _evaluate_and_log(
    spec: RunSpec,
    model: nn.Module,
    model_config: dict[str, Any],
    evaluators: Sequence[Validator],
    outcome: TrainingOutcome,
    tracker: BufferedRun | None,
) -> None:
    """Evaluate the final weights, write and log the tables and plots, log the model."""
    for evaluator in evaluators:
        evaluation = evaluator.evaluate(model)
        outcome.evaluations[evaluator.prefix] = evaluation
        outcome.metrics |= {f"best/{k}": v for k, v in evaluation.metrics.items()}
        folder = outcome.checkpoint_dir / "evaluation"
        files = write_evaluation(evaluation, evaluator.cases, folder, evaluator.prefix)
        if tracker is not None:
            for path in files:
                tracker.log_artifact(path, "evaluation")
    if tracker is not None:
        tracker.log_metrics(outcome.metrics, outcome.progress.epoch)
        if spec.tracking.log_model:
            log_model(spec, tracker, model, model_config, outcome.metrics)
