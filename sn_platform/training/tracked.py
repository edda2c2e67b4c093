"""The tracking glue of a run: open (or reopen) its MLflow run with config and tags, close it
with the right status, and log the final model."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from torch import nn

from sn_platform import tracking
from sn_platform.data.bids import dataset_fingerprint
from sn_platform.runtime import Runtime
from sn_platform.training.subjects import SubjectSplit

if TYPE_CHECKING:
    from sn_platform.training.run import RunContext, RunSpec


def _open_run(
    spec: RunSpec,
    subjects: SubjectSplit,
    runtime: Runtime,
    context: RunContext,
    resumed_run_id: str | None,
) -> tracking.RunLogger:
    """The resumed MLflow run, or a new one with the config, spec, splits and tags."""
    settings = spec.tracking
    tracking.configure(settings.uri)
    if resumed_run_id:
        return tracking.RunLogger.reopen(resumed_run_id)
    fold = spec.trainer.fold
    tags = {
        "sn.dataset_fingerprint": dataset_fingerprint(subjects.all),
        "sn.dataset_root": str(Path(str(spec.data.root)).resolve()),
        "sn.fold": "all" if fold is None else str(fold),
        "sn.device": str(runtime.device),
        "sn.precision": runtime.precision,
        "sn.subjects": f"{len(subjects.train)} train / {len(subjects.validation)} val / "
        f"{len(subjects.test)} test",
        **context.tags,
    }
    run = tracking.RunLogger.start(
        settings.experiment, spec.name, tags, settings.artifact_location,
        context.parent_run_id, key=context.run_key,
    )  # fmt: skip
    if run.client.get_run(run.run_id).data.params:
        return run  # a keyed run restarted before its first checkpoint: all logged already
    run.log_params(tracking.flatten(spec.config))
    run.log_text(yaml.safe_dump(dict(spec.config), sort_keys=False), "config/config.yaml")
    run.log_text(spec.data.preprocessing.to_json(), "config/preprocessing.json")
    run.log_text(subjects.splits.to_json(), "config/splits.json")
    return run


@contextlib.contextmanager
def tracked_run(
    spec: RunSpec,
    subjects: SubjectSplit,
    runtime: Runtime,
    context: RunContext,
    resumed_run_id: str | None,
) -> Iterator[tracking.RunLogger | None]:
    """The run's MLflow run while the block runs (None when tracking is off): FINISHED at
    the end, KILLED after Ctrl-C, FAILED after an error."""
    if not spec.tracking.enabled:
        yield None
        return
    run = _open_run(spec, subjects, runtime, context, resumed_run_id)
    try:
        yield run
    except BaseException as error:
        run.finish("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        raise
    run.finish()


def log_model(
    spec: RunSpec,
    run: tracking.RunLogger,
    model: nn.Module,
    model_config: Mapping[str, Any],
    metrics: Mapping[str, float],
) -> str:
    """Log the final weights as a pyfunc model and register it when asked; its model URI."""
    model_uri = tracking.log_segmenter(
        run.run_id,
        model.cpu(),
        model_config,
        spec.data.preprocessing,
        spec.inference,
    )
    if spec.tracking.register:
        tracking.register(
            model_uri,
            spec.tracking.model_name,
            spec.tracking.alias,
            tags={"run_id": run.run_id, **{k: f"{v:.4g}" for k, v in metrics.items()}},
            description=f"{spec.name}: trained by sn-train on {spec.data.root}",
        )
    return model_uri
