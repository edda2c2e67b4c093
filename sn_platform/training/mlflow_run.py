"""A training run's MLflow run, through ``tracking``'s buffer: open (or reopen) it with the
config, tags, dataset and splits, close it with the right status, and log the final model."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from sn_platform import tracking
from sn_platform.data.bids import dataset_fingerprint
from sn_platform.devices import Runtime
from sn_platform.training.spec import RunContext, RunSpec
from sn_platform.training.subjects import SubjectSplit, training_label_counts

TRACKING_FOLDER = "tracking"


@dataclass(frozen=True)
class RunOpening:
    """What a training run's MLflow run is opened with.

    Parameters
    ----------
    spec : the run's settings (tracking, name, data, config)
    subjects : its train, validation and test subjects, logged as the dataset and splits
    runtime : the device and precision it trains with, logged as tags
    context : its place in a sweep (parent run, run key, extra tags, delivery patience)
    directory : the run's checkpoint folder; the tracking journal is ``directory/tracking``
    resume : reopen the journal's run where the folder has one
    """

    spec: RunSpec
    subjects: SubjectSplit
    runtime: Runtime
    context: RunContext
    directory: Path
    resume: bool


def _open_run(opening: RunOpening) -> tracking.BufferedRun:
    """The run's buffered MLflow run in ``directory/tracking``: the resumed one, or a new one
    with the config, spec, splits and tags."""
    spec, subjects, context = opening.spec, opening.subjects, opening.context
    runtime, resume = opening.runtime, opening.resume
    settings = spec.tracking
    fold = spec.trainer.fold
    tags = {
        "sn.dataset_fingerprint": dataset_fingerprint(subjects.all),
        "sn.dataset_root": str(Path(str(spec.data.root)).resolve()),
        "sn.fold": "all" if fold is None else str(fold),
        "sn.device": str(runtime.device),
        "sn.precision": runtime.precision,
        "sn.subjects": f"{len(subjects.train)} train / {len(subjects.validation)} val / "
        f"{len(subjects.test)} test",
        "sn.training_labels": training_label_counts(
            subjects.train, spec.data.labels, spec.data.pseudo_label_source
        ),
        **context.tags,
    }
    start = {
        "experiment": settings.experiment, "run_name": spec.name, "tags": tags,
        "artifact_location": settings.artifact_location,
        "parent_run_id": context.parent_run_id, "key": context.run_key,
    }  # fmt: skip
    folder = opening.directory / TRACKING_FOLDER
    resumed = resume and (folder / tracking.buffer.STATE).exists()
    run = tracking.BufferedRun.open(folder, tracking.absolute_uri(settings.uri), start, resume)
    if resumed:
        return run
    sizes = {"train": subjects.train, "validation": subjects.validation, "test": subjects.test}
    run.log_dataset(
        Path(str(spec.data.root)), tags["sn.dataset_fingerprint"],
        {split: len(records) for split, records in sizes.items()},
    )  # fmt: skip
    run.log_params(tracking.flatten(spec.config))
    run.log_text(yaml.safe_dump(dict(spec.config), sort_keys=False), "config/config.yaml")
    run.log_text(spec.data.preprocessing.to_json(), "config/preprocessing.json")
    run.log_text(subjects.splits.to_json(), "config/splits.json")
    return run


@contextlib.contextmanager
def tracked_run(opening: RunOpening) -> Iterator[tracking.BufferedRun | None]:
    """The run's buffered MLflow run while the block runs (None when tracking is off):
    FINISHED at the end, KILLED after Ctrl-C, FAILED after an error; then delivered, trying
    for ``context.tracking_patience_s`` seconds (what is left waits in its folder)."""
    if not opening.spec.tracking.enabled:
        yield None
        return
    run = _open_run(opening)
    try:
        yield run
    except BaseException as error:
        run.finish("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        run.close()
        raise
    run.finish()
    run.close(opening.context.tracking_patience_s)


def log_model(
    spec: RunSpec,
    run: tracking.BufferedRun,
    model: nn.Module,
    model_config: Mapping[str, Any],
    metrics: Mapping[str, float],
) -> None:
    """Log the final weights as a pyfunc model, registered when asked with its key figures
    as tags and a table (through the buffer: its URI is ``run.model_uri`` once the store
    has it)."""
    registration = None
    if spec.tracking.register:
        figures = tracking.key_figures(metrics, {"val": "best/val/", "test": "best/test/"})
        registration = {
            "name": spec.tracking.model_name,
            "alias": spec.tracking.alias,
            "tags": tracking.key_figure_tags(figures),
            "description": f"{spec.name}: trained by sn-train on {spec.data.root}\n\n"
            f"{tracking.key_figure_table(figures)}",
        }
    run.log_model(
        model.cpu(), model_config, spec.data.preprocessing, spec.inference, registration,
        spec.localiser,
    )  # fmt: skip
