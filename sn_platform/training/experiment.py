"""One training run from a composed config: check, build, train, evaluate, log.

``sn-train`` calls ``train_and_evaluate``; so does every Ray Tune trial of ``sn-sweep``
(with its own ``report`` and checkpoint folder). Hydra's ``instantiate`` builds the model,
loss, optimiser and augmentation from their ``_target_`` entries.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import nibabel as nib
import numpy as np
import torch
from hydra.utils import instantiate
from numpy.typing import NDArray
from omegaconf import DictConfig, OmegaConf

from sn_platform import tracking
from sn_platform.data.bids import (
    Geometry,
    SubjectRecord,
    dataset_fingerprint,
    discover_subjects,
    label_path,
    validate_subject,
)
from sn_platform.data.loaders import patch_loader, subjects_dataset, training_queue
from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.data.splits import Splits, load_or_create_splits
from sn_platform.evaluation import plots
from sn_platform.evaluation.subject import agreement_report, write_table
from sn_platform.inference.predictor import InferenceSettings
from sn_platform.models.ensemble import ProbabilityEnsemble
from sn_platform.runtime import effective_precision, seed_everything, select_device
from sn_platform.training.engine import (
    BEST_WEIGHTS,
    LAST_CHECKPOINT,
    Progress,
    Trainer,
    TrainerSettings,
    load_best_weights,
    read_checkpoint,
)
from sn_platform.training.validation import Evaluation, Validator

Report = Callable[[Mapping[str, float], int], None]
TRAINER_KEYS = (
    "max_epochs", "lr_schedule", "warmup_epochs", "grad_clip_norm", "monitor", "mode",
    "patience", "min_delta", "val_every", "precision", "compile", "progress",
)  # fmt: skip


class ConfigError(ValueError):
    """A composed config that cannot run; the message names the key and the fix."""


def preprocessing_spec(cfg: DictConfig) -> PreprocessingSpec:
    """The preprocessing spec of ``data.preprocessing``."""
    return instantiate(cfg.data.preprocessing, _convert_="all")


def inference_settings(cfg: DictConfig) -> InferenceSettings:
    """Inference settings of ``inference`` with the patch of ``data.patch_size``."""
    return InferenceSettings(patch_size=tuple(cfg.data.patch_size), **cfg.inference)


def trainer_settings(cfg: DictConfig) -> TrainerSettings:
    """Engine settings of ``trainer``."""
    return TrainerSettings(**{key: cfg.trainer[key] for key in TRAINER_KEYS})


def _check(condition: bool, key: str, problem: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {problem}")


def _canonical_extent_mm(path: Path) -> NDArray[np.float64]:
    """Field of view (mm) of an image along the R, A and S axes, from its header only."""
    image = cast(nib.Nifti1Image, nib.load(path))
    orientation = nib.io_orientation(image.affine)
    extent = np.zeros(3)
    zooms = Geometry(cast(tuple[int, int, int], image.shape[:3]), image.affine).voxel_mm
    for voxel_axis, (world_axis, _) in enumerate(orientation):
        extent[int(world_axis)] = image.shape[voxel_axis] * zooms[voxel_axis]
    return extent


def check_config(cfg: DictConfig) -> None:
    """Refuse a config that cannot run, before any image data is read.

    Checks the data root, the optimiser, the preprocessing, inference and trainer
    settings, the fold, and that the patch fits the preprocessed volumes (image headers
    only). Raises ``ConfigError`` with a one-line message.
    """
    _check(cfg.data.root is not None, "data.root", "not set; give data.root=/path/to/bids")
    _check(Path(cfg.data.root).is_dir(), "data.root", f"{cfg.data.root} is not a folder")
    for key in ("lr", "weight_decay", "momentum"):
        if key in cfg.optim:
            value = float(cfg.optim[key])
            _check(value > 0 if key == "lr" else value >= 0, f"optim.{key}", f"invalid {value}")
    for key, build in (
        ("data.preprocessing", preprocessing_spec),
        ("inference", inference_settings),
        ("trainer", trainer_settings),
    ):
        try:
            build(cfg)
        except (ValueError, TypeError) as error:
            raise ConfigError(f"{key}: {error}") from None
    folds = int(cfg.data.splits.folds)
    fold = cfg.trainer.fold
    _check(fold is None or 0 <= int(fold) < folds, "trainer.fold", f"{fold} not in 0..{folds - 1}")
    _check(int(cfg.data.batch_size) >= 1, "data.batch_size", "must be >= 1")
    _check(int(cfg.data.samples_per_volume) >= 1, "data.samples_per_volume", "must be >= 1")
    spec = preprocessing_spec(cfg)
    patch = np.array(cfg.data.patch_size, dtype=float)
    if spec.slab_slices is not None:
        _check(
            patch[2] <= spec.slab_slices,
            "data.patch_size",
            f"{list(cfg.data.patch_size)} is deeper than the {spec.slab_slices}-slice slab",
        )
    if spec.spacing_mm is not None:
        root = Path(cfg.data.root)
        for echo in sorted(root.glob("sub-*/anat/*_echo-1_part-mag_MEGRE.nii*")):
            voxels = _canonical_extent_mm(echo) / np.array(spec.spacing_mm)
            too_big = patch[:2] > np.floor(voxels[:2]) + 1
            _check(
                not too_big.any(),
                "data.patch_size",
                f"{list(cfg.data.patch_size)} is larger than the preprocessed volume "
                f"{[int(v) for v in voxels]} of {echo.name}",
            )


@dataclass
class SubjectSplit:
    """The records of one run: training, validation (may be empty) and test subjects."""

    train: list[SubjectRecord]
    validation: list[SubjectRecord]
    test: list[SubjectRecord]
    splits: Splits


def split_subjects(cfg: DictConfig, spec: PreprocessingSpec) -> SubjectSplit:
    """Discover and validate the dataset and pick the subjects of ``trainer.fold``."""
    slab_labels = (spec.slab_reference,) if spec.slab_slices is not None else ()
    records = discover_subjects(
        cfg.data.root,
        n_echoes=max(spec.echoes),
        label_source=cfg.data.label_source,
        labels=(cfg.data.label,),
        optional_labels=slab_labels,
    )
    for record in records:
        validate_subject(record)
    splits = load_or_create_splits(
        cfg.data.splits.file,
        {r.participant_id: r.group or "n/a" for r in records},
        int(cfg.data.splits.folds),
        int(cfg.data.splits.seed),
        float(cfg.data.splits.test_fraction),
    )
    by_id = {r.participant_id: r for r in records}
    if cfg.trainer.fold is None:
        train_ids, validation_ids = splits.development, list[str]()
    else:
        train_ids, validation_ids = splits.fold(int(cfg.trainer.fold))
    return SubjectSplit(
        train=[by_id[i] for i in train_ids],
        validation=[by_id[i] for i in validation_ids],
        test=[by_id[i] for i in splits.test],
        splits=splits,
    )


def truth_label_paths(root: Path, records: Sequence[SubjectRecord], label: str) -> dict[str, Path]:
    """Truth labels (``derivatives/truth``, phantom data) of the records that have one."""
    paths = {r.participant_id: label_path(root, "truth", r.participant_id, label) for r in records}
    return {k: v for k, v in paths.items() if v.exists()}


@dataclass
class TrainingOutcome:
    """What a run produced: final metrics (best weights), per-subject rows, the model."""

    metrics: dict[str, float]
    progress: Progress
    checkpoint_dir: Path
    run_id: str | None = None
    model_uri: str | None = None
    evaluations: dict[str, Evaluation] = field(default_factory=dict)


def _prepare_checkpoints(directory: Path, resume: bool) -> dict[str, Any] | None:
    if resume:
        return read_checkpoint(directory)
    for name in (LAST_CHECKPOINT, BEST_WEIGHTS):
        (directory / name).unlink(missing_ok=True)
    return None


def train_and_evaluate(
    cfg: DictConfig,
    report: Report | None = None,
    checkpoint_dir: Path | None = None,
    parent_run_id: str | None = None,
    run_key: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> TrainingOutcome:
    """Train one model as ``cfg`` says, evaluate its best weights, and track it.

    Parameters
    ----------
    cfg : composed config (data, augment, model, loss, optim, trainer, inference, tracking)
    report : called with ``(metrics, epoch)`` after every epoch (Ray Tune)
    checkpoint_dir : overrides ``trainer.checkpoint_dir``
    parent_run_id : MLflow run this run is nested under (a sweep)
    run_key : identity of the run within its parent; a restarted run reuses its MLflow run
    tags : extra MLflow tags
    """
    check_config(cfg)
    spec, settings = preprocessing_spec(cfg), inference_settings(cfg)
    device = select_device(cfg.trainer.device)
    precision = effective_precision(device, cfg.trainer.precision)
    seed_everything(int(cfg.seed), bool(cfg.trainer.deterministic))
    subjects = split_subjects(cfg, spec)
    directory = Path(checkpoint_dir or cfg.trainer.checkpoint_dir)
    checkpoint = _prepare_checkpoints(directory, bool(cfg.trainer.resume))
    tracker = _start_tracking(
        cfg, spec, subjects, device, checkpoint, parent_run_id, run_key, dict(tags or {})
    )
    try:
        outcome = _run(
            cfg, spec, settings, device, precision, subjects, directory, checkpoint, report, tracker
        )
    except BaseException as error:
        if tracker is not None:
            tracker.finish("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        raise
    if tracker is not None:
        tracker.finish()
    return outcome


def _start_tracking(
    cfg: DictConfig,
    spec: PreprocessingSpec,
    subjects: SubjectSplit,
    device: torch.device,
    checkpoint: Mapping[str, Any] | None,
    parent_run_id: str | None,
    run_key: str | None,
    extra_tags: dict[str, str],
) -> tracking.RunLogger | None:
    """Open the run's MLflow run: the resumed one, or a new one with config and tags."""
    if not cfg.tracking.enabled:
        return None
    tracking.configure(cfg.tracking.uri)
    previous = (checkpoint or {}).get("extra", {}).get("mlflow_run_id")
    if previous:
        return tracking.RunLogger.reopen(previous)
    records = [*subjects.train, *subjects.validation, *subjects.test]
    tags = {
        "sn.dataset_fingerprint": dataset_fingerprint(records),
        "sn.dataset_root": str(Path(cfg.data.root).resolve()),
        "sn.fold": "all" if cfg.trainer.fold is None else str(cfg.trainer.fold),
        "sn.device": str(device),
        "sn.subjects": f"{len(subjects.train)} train / {len(subjects.validation)} val / "
        f"{len(subjects.test)} test",
        **extra_tags,
    }
    run = tracking.RunLogger.start(
        cfg.tracking.experiment, cfg.run_name, tags, cfg.tracking.artifact_location,
        parent_run_id, key=run_key,
    )  # fmt: skip
    if run.client.get_run(run.run_id).data.params:
        return run  # a keyed run restarted before its first checkpoint: all logged already
    run.log_params(tracking.flatten(OmegaConf.to_container(cfg, resolve=True)))  # type: ignore[arg-type]
    run.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/config.yaml")
    run.log_text(spec.to_json(), "config/preprocessing.json")
    run.log_text(subjects.splits.to_json(), "config/splits.json")
    return run


def _write_evaluation(evaluation: Evaluation, validator: Validator, folder: Path) -> list[Path]:
    """Per-subject TSV, agreement JSON and the three plots of one evaluation."""
    prefix = validator.prefix
    folder.mkdir(parents=True, exist_ok=True)
    table = folder / f"{prefix}_subjects.tsv"
    write_table(evaluation.rows, table)
    report = folder / f"{prefix}_agreement.json"
    report.write_text(json.dumps(agreement_report(evaluation.rows), indent=2))
    figures = [folder / f"{prefix}_{name}.png" for name in ("scatter", "bland_altman", "overlays")]
    plots.save_agreement_scatter(evaluation.rows, figures[0])
    plots.save_bland_altman(evaluation.rows, figures[1])
    plots.save_overlays(evaluation.rows, validator.cases, evaluation.masks, figures[2])
    return [table, report, *(f for f in figures if f.exists())]


def _run(
    cfg: DictConfig,
    spec: PreprocessingSpec,
    settings: InferenceSettings,
    device: torch.device,
    precision: str,
    subjects: SubjectSplit,
    directory: Path,
    checkpoint: Mapping[str, Any] | None,
    report: Report | None,
    tracker: tracking.RunLogger | None,
) -> TrainingOutcome:
    label = str(cfg.data.label)
    model = instantiate(cfg.model)
    optimizer = instantiate(cfg.optim)(model.parameters())
    dataset = subjects_dataset(subjects.train, spec, instantiate(cfg.augment), label)
    data = cfg.data

    def make_batches() -> Any:
        queue = training_queue(
            dataset,
            data.patch_size,
            int(data.samples_per_volume),
            int(data.queue_length),
            {int(k): float(v) for k, v in data.label_probabilities.items()},
            int(data.num_workers),
        )
        return patch_loader(queue, int(data.batch_size))

    truth = truth_label_paths(Path(data.root), [*subjects.validation, *subjects.test], label)

    def validator(records: Sequence[SubjectRecord], prefix: str) -> Validator:
        return Validator(records, spec, settings, device, label, truth, prefix, precision)

    validate = validator(subjects.validation, "val") if subjects.validation else None
    trainer = Trainer(
        model, instantiate(cfg.loss), optimizer, spec, trainer_settings(cfg), device, directory
    )
    if checkpoint is not None:
        trainer.resume(checkpoint)

    def on_epoch(metrics: Mapping[str, float], epoch: int) -> None:
        if tracker is not None:
            tracker.log_metrics(metrics, epoch)
        if report is not None:
            report(metrics, epoch)

    batches = math.ceil(len(subjects.train) * int(data.samples_per_volume) / int(data.batch_size))
    run_id = None if tracker is None else tracker.run_id
    progress = trainer.fit(make_batches, validate, on_epoch, batches, {"mlflow_run_id": run_id})
    load_best_weights(model, directory)
    evaluators = [validate] if validate is not None else []
    if cfg.trainer.evaluate_test and subjects.test:
        evaluators.append(validator(subjects.test, "test"))
    outcome = TrainingOutcome(
        metrics={"best/epoch": float(progress.best_epoch)},
        progress=progress,
        checkpoint_dir=directory,
        run_id=run_id,
    )
    model_config = cast(dict[str, Any], OmegaConf.to_container(cfg.model, resolve=True))
    _evaluate_and_log(cfg, model, model_config, spec, settings, evaluators, outcome, tracker)
    return outcome


def _evaluate_and_log(
    cfg: DictConfig,
    model: torch.nn.Module,
    model_config: dict[str, Any],
    spec: PreprocessingSpec,
    settings: InferenceSettings,
    evaluators: Sequence[Validator],
    outcome: TrainingOutcome,
    tracker: tracking.RunLogger | None,
) -> None:
    """Evaluate the final weights, write and log the tables and plots, log the model."""
    for evaluator in evaluators:
        evaluation = evaluator.evaluate(model)
        outcome.evaluations[evaluator.prefix] = evaluation
        outcome.metrics |= {f"best/{k}": v for k, v in evaluation.metrics.items()}
        files = _write_evaluation(evaluation, evaluator, outcome.checkpoint_dir / "evaluation")
        if tracker is not None:
            for path in files:
                tracker.log_artifact(path, "evaluation")
    if tracker is not None:
        tracker.log_metrics(outcome.metrics, outcome.progress.epoch)
        if cfg.tracking.log_model:
            outcome.model_uri = _log_model(
                cfg, tracker, model, model_config, spec, settings, outcome.metrics
            )


def evaluate_ensemble(
    cfg: DictConfig,
    weight_files: Sequence[Path],
    directory: Path,
    parent_run_id: str | None = None,
    run_key: str | None = None,
) -> TrainingOutcome:
    """The mean-probability ensemble of trained copies of ``cfg.model`` (say, the fold
    models of a sweep's best configuration), evaluated on the test split, tracked and
    logged as one model like a training run.
    """
    check_config(cfg)
    spec, settings = preprocessing_spec(cfg), inference_settings(cfg)
    device = select_device(cfg.trainer.device)
    precision = effective_precision(device, cfg.trainer.precision)
    subjects = split_subjects(cfg, spec)
    if not subjects.test:
        raise ConfigError("data.splits.test_fraction: an ensemble is evaluated on a test split")
    member = cast(dict[str, Any], OmegaConf.to_container(cfg.model, resolve=True))
    model = ProbabilityEnsemble(member, len(weight_files))
    for network, path in zip(model.members, weight_files, strict=True):
        network.load_state_dict(torch.load(path, map_location="cpu"))
    model_config = {"_target_": f"{ProbabilityEnsemble.__module__}.ProbabilityEnsemble",
                    "member": member, "count": len(weight_files)}  # fmt: skip
    tracker = _start_tracking(cfg, spec, subjects, device, None, parent_run_id, run_key, {})
    label = str(cfg.data.label)
    truth = truth_label_paths(Path(cfg.data.root), subjects.test, label)
    evaluator = Validator(subjects.test, spec, settings, device, label, truth, "test", precision)
    outcome = TrainingOutcome({"ensemble/members": float(len(weight_files))}, Progress(), directory)
    outcome.run_id = None if tracker is None else tracker.run_id
    try:
        _evaluate_and_log(
            cfg, model.to(device), model_config, spec, settings, [evaluator], outcome, tracker
        )
    except BaseException:
        if tracker is not None:
            tracker.finish("FAILED")
        raise
    if tracker is not None:
        tracker.finish()
    return outcome


def _log_model(
    cfg: DictConfig,
    tracker: tracking.RunLogger,
    model: torch.nn.Module,
    model_config: dict[str, Any],
    spec: PreprocessingSpec,
    settings: InferenceSettings,
    metrics: Mapping[str, float],
) -> str:
    """Log the final weights as a pyfunc model and register it when asked."""
    model_uri = tracking.log_segmenter(
        tracker.run_id,
        model.cpu(),
        model_config,
        spec,
        settings,
        str(cfg.data.label),
    )
    if cfg.tracking.register:
        tracking.register(
            model_uri,
            cfg.tracking.model_name,
            cfg.tracking.alias,
            tags={"run_id": tracker.run_id, **{k: f"{v:.4g}" for k, v in metrics.items()}},
            description=f"{cfg.run_name}: trained by sn-train on {cfg.data.root}",
        )
    return model_uri
