"""``sn-sweep`` on Ray Tune: every sampled configuration on every fold, pooled out-of-fold
clinical agreement, a ranked leaderboard, a refit of the best configuration, and its
registration as the champion model.

Each trial (``sweep.trial``) runs ``training.run.train_and_evaluate`` (the same loop as
``sn-train``), reports every epoch with a ``tune.Checkpoint`` (so ASHA can stop it and a
failed trial resumes from its last epoch) and logs a nested MLflow run under the sweep's
parent run. With a local SQLite store the sweep starts one ``mlflow server`` over it, the
single writer that all trials log through.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import ray
from omegaconf import DictConfig, OmegaConf
from ray import tune

from sn_platform import tracking
from sn_platform.composition import build
from sn_platform.data.augment import reads_tissues
from sn_platform.data.io import write_text
from sn_platform.errors import ConfigError, folder_name, one_line
from sn_platform.evaluation import plots
from sn_platform.evaluation.tables import write_table
from sn_platform.inference.ray_engine import start_ray
from sn_platform.sweep.compose import absolute, compose_training, pinned_paths, training_overrides
from sn_platform.sweep.final import collect_fold_weights, final_model
from sn_platform.sweep.leaderboard import FoldResult, aggregate, rank
from sn_platform.sweep.registration import register_champion
from sn_platform.sweep.settings import TuneSettings
from sn_platform.sweep.space import override, sample_configurations, search_space
from sn_platform.sweep.trial import run_trial
from sn_platform.tracking.server import private_endpoint
from sn_platform.training.assembly import run_spec
from sn_platform.training.checks import check_run
from sn_platform.training.spec import RunSpec
from sn_platform.training.subjects import split_subjects

REGISTRATION_TRIES = 6  # 5 s apart: a restarted private server answers well within that


class SweepInterrupted(RuntimeError):
    """The sweep stopped before every trial ended (Ctrl-C, a lost driver): resume it."""


@dataclass
class SweepOutcome:
    """The ranked leaderboard, the parent run, and the registered champion."""

    leaderboard: list[dict[str, Any]]
    parent_run_id: str
    experiment_dir: Path
    model_uri: str
    model_version: str
    refit_metrics: dict[str, float]


def _check_folds(tune: TuneSettings, spec: RunSpec) -> None:
    folder_name("tune.name", tune.name)
    if tune.cv.folds > spec.data.splits.folds:
        raise ConfigError(f"tune.cv.folds: {tune.cv.folds} not in 1..{spec.data.splits.folds}")


def _param_space(
    tune_cfg: TuneSettings, space: dict[str, Any], folds: list[int], base: list[str]
) -> tuple[dict[str, Any], Any]:
    """The Tune param space and search algorithm; checks every sampled config composes."""
    if tune_cfg.search_alg == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        if any(isinstance(v, dict) for v in space.values()):
            raise ConfigError("tune.space: grid is not available with Optuna; use choice")
        searcher = OptunaSearch(metric="val/dsc", mode=tune_cfg.mode, seed=int(tune_cfg.seed))
        return space, searcher
    configurations = sample_configurations(space, int(tune_cfg.num_samples), int(tune_cfg.seed))
    variants = []
    for index, configuration in enumerate(configurations):
        sampled = [override(k, v) for k, v in configuration.items()]
        check_run(run_spec(compose_training([*base, *sampled])))
        for fold in folds:
            variants.append(
                {"config_id": f"c{index:02d}", "folds": [fold], "overrides": configuration}
            )
    return {"variant": tune.grid_search(variants)}, None


def _scheduler(tune_cfg: TuneSettings, max_epochs: int) -> Any:
    if tune_cfg.scheduler == "none":
        return None
    return tune.schedulers.ASHAScheduler(
        time_attr="training_iteration",
        metric=tune_cfg.scheduler_metric,
        mode=tune_cfg.mode,
        max_t=max_epochs,
        grace_period=int(tune_cfg.grace_period),
        reduction_factor=float(tune_cfg.reduction_factor),
    )


def _unfinished_trials(experiment_dir: Path, expected: int) -> int:
    """Trials not yet ended, from the saved experiment state.

    After Ctrl-C Tune marks its trials TERMINATED in memory but saves the running ones as
    PENDING (to restart on resume), and never creates the trials not yet started.
    """
    trials = tune.ExperimentAnalysis(str(experiment_dir)).trials
    ended = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
    return expected - ended


def _fold_results(grid: Any) -> list[FoldResult]:
    results = []
    for result in grid:
        metrics = result.metrics or {}
        if not metrics.get("done"):
            continue
        overrides = json.loads(metrics["overrides"])
        for fold, finished in json.loads(metrics["finished"]).items():
            results.append(
                FoldResult(
                    str(metrics["config_id"]), int(fold), overrides,
                    finished["metrics"], finished["rows"],
                )
            )  # fmt: skip
    return results


def _deliver_trial_journals(grid: Any, endpoint: str, name: str) -> None:
    """Deliver to ``endpoint`` what finished folds could not (their store was down when
    they ended, or a resumed sweep's server has a new port)."""
    for result in grid:
        metrics = result.metrics or {}
        if not metrics.get("done"):
            continue
        for finished in json.loads(metrics["finished"]).values():
            folder = finished.get("tracking")
            if not folder or not Path(folder).exists():
                continue
            try:
                tracking.with_retries(partial(tracking.sync, Path(folder), endpoint))
            except Exception as error:  # whatever the store raises, after every retry
                raise SweepInterrupted(
                    f"{folder}: the tracking store does not take this trial's history "
                    f"({one_line(error, 160)}); resume with tune.resume=true tune.name={name}"
                ) from None


def _start_parent(
    state_file: Path, cfg: DictConfig, resume: bool, base: list[str]
) -> tracking.RunLogger:
    if resume and state_file.exists():
        return tracking.RunLogger.reopen(json.loads(state_file.read_text())["parent_run_id"])
    parent = tracking.RunLogger.start(
        cfg.tracking.experiment,
        f"sweep-{cfg.tune.name}",
        tags={"sn.kind": "sweep", "sn.tune_name": str(cfg.tune.name)},
        artifact_location=absolute(cfg.tracking.artifact_location),
    )
    write_text(state_file, json.dumps({"parent_run_id": parent.run_id}))
    tune_settings = OmegaConf.to_container(cfg.tune, resolve=True)
    parent.log_params(tracking.flatten({"tune": tune_settings}))
    parent.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/sweep.yaml")
    parent.log_text("\n".join(base) + "\n", "config/training_overrides.txt")
    return parent


def run_sweep(cfg: DictConfig, overrides: Sequence[str]) -> SweepOutcome:
    """Run (or resume) the sweep ``cfg.tune`` describes; see the module docstring.

    Parameters
    ----------
    cfg : the composed ``sweep`` config (training config + ``tune`` + ``ray``)
    overrides : the command-line overrides; the training ones are passed to every trial
    """
    tune_cfg: TuneSettings = build(cfg, "tune")
    spec = run_spec(cfg)
    _check_folds(tune_cfg, spec)
    check_run(spec)
    try:
        space = search_space(tune_cfg.space)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    folds = list(range(int(tune_cfg.cv.folds)))
    storage = Path(tune_cfg.storage_path).expanduser().resolve()
    experiment_dir = storage / str(tune_cfg.name)
    resume = bool(tune_cfg.resume)
    if resume and not tune.Tuner.can_restore(str(experiment_dir)):
        raise ConfigError(f"tune.resume: no sweep to resume in {experiment_dir}")
    if not resume and experiment_dir.exists():
        raise ConfigError(
            f"tune.name: {experiment_dir} exists; resume it with tune.resume=true "
            "or start another with tune.name=NEW"
        )
    # Validates the data (the tissue maps too where the augmentation reads them) and writes
    # the splits once.
    split_subjects(spec.data, spec.trainer.fold, reads_tissues(spec.augmentation))
    uri = tracking.absolute_uri(str(cfg.tracking.uri))
    resources = dict(tune_cfg.resources_per_trial)
    threads = max(1, int(resources.get("cpu", 1)))
    with private_endpoint(uri, absolute(cfg.tracking.artifact_location)) as endpoint:
        base = [*training_overrides(overrides), *pinned_paths(cfg, endpoint)]
        if resources.get("gpu", 0) == 0:
            base.append("trainer.device=cpu")
        param_space, searcher = _param_space(tune_cfg, space, folds, base)
        tracking.configure(endpoint)
        parent = _start_parent(storage / f"{tune_cfg.name}.sn-sweep.json", cfg, resume, base)
        try:
            _init_ray(cfg)
            trainable = tune.with_resources(
                tune.with_parameters(
                    run_trial, base_overrides=base, parent_run_id=parent.run_id,
                    folds=folds, space_keys=list(space), threads=threads,
                ),
                resources,
            )  # fmt: skip
            if resume:
                tuner = tune.Tuner.restore(str(experiment_dir), trainable, resume_errored=True)
            else:
                tuner = tune.Tuner(
                    trainable,
                    param_space=param_space,
                    tune_config=tune.TuneConfig(
                        search_alg=searcher,
                        scheduler=_scheduler(tune_cfg, int(cfg.trainer.max_epochs)),
                        num_samples=int(tune_cfg.num_samples) if searcher else 1,
                        max_concurrent_trials=tune_cfg.max_concurrent_trials,
                    ),
                    run_config=tune.RunConfig(
                        name=str(tune_cfg.name),
                        storage_path=str(storage),
                        failure_config=tune.FailureConfig(max_failures=int(tune_cfg.max_failures)),
                        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                        verbose=int(tune_cfg.verbose),
                    ),
                )
            grid = tuner.fit()
            expected = (
                int(tune_cfg.num_samples)
                if searcher
                else len(param_space["variant"]["grid_search"])
            )
            unfinished = _unfinished_trials(experiment_dir, expected)
            if unfinished:
                raise SweepInterrupted(
                    f"sweep stopped with {unfinished} of {expected} trials unfinished; "
                    f"resume with tune.resume=true tune.name={tune_cfg.name}"
                )
            results = _fold_results(grid)
            _deliver_trial_journals(grid, endpoint, str(tune_cfg.name))
            selection = dict(tune_cfg.selection)
            leaderboard = rank(aggregate(results, len(folds)), selection, tune_cfg.mode)
            members = None
            if tune_cfg.final == "ensemble" and leaderboard:
                members = collect_fold_weights(
                    grid, leaderboard[0]["config_id"], experiment_dir / "ensemble" / "members"
                )
            state_file = storage / f"{tune_cfg.name}.sn-sweep.json"
            outcome = _finish(
                cfg,
                parent,
                leaderboard,
                experiment_dir,
                state_file,
                endpoint,
                base,
                resources,
                members,
            )
        except SweepInterrupted:
            with contextlib.suppress(Exception):  # the store may be the reason we stop
                parent.finish("KILLED")
            raise
        except BaseException:
            with contextlib.suppress(Exception):  # the store may be down too: keep the cause
                parent.finish("FAILED")
            raise
        finally:
            ray.shutdown()
    tracking.configure(uri)  # the private server is gone; later calls use the store itself
    return outcome


def _init_ray(cfg: DictConfig) -> None:
    # Each epoch's checkpoint forces a state snapshot by design (num_to_keep=1): no warning.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if int(cfg.tune.verbose) == 0:
        # Tune's newer console output prints its experiment box and paths even at verbose=0;
        # the older one is silent there.
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    start_ray(cfg.ray.address, cfg.ray.num_cpus)


def _final_model(
    state_file: Path, config_id: str, train: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """The final model of ``config_id``: recorded in the sweep's state file once trained
    (a resumed sweep never trains it again), else ``train()``, recorded."""
    state = json.loads(state_file.read_text())
    recorded = state.get("final")
    if recorded is not None and recorded["config_id"] == config_id:
        return dict(recorded["result"])
    result = train()
    state["final"] = {"config_id": config_id, "result": result}
    write_text(state_file, json.dumps(state))
    return result


def _register(
    cfg: DictConfig,
    endpoint: str,
    parent: tracking.RunLogger,
    best: Mapping[str, Any],
    final: dict[str, Any],
    members: int,
) -> str:
    """Deliver the final run's journal, log the parent's summary and register the champion;
    its version. Raises when the store does not take it."""
    if final.get("tracking"):
        delivered = tracking.sync(Path(final["tracking"]), endpoint)
        final |= {"run_id": delivered["run_id"], "model_uri": delivered["model_uri"]}
    numeric = {k: float(v) for k, v in best.items() if isinstance(v, float) and math.isfinite(v)}
    parent.log_metrics({f"best/{k}": v for k, v in numeric.items()}, 0)
    parent.log_metrics(final["metrics"], 0)
    version = register_champion(cfg, parent.run_id, best, final, members)
    parent.set_tags({"sn.champion_version": version})
    tracking.link_children(parent.run_id, tracking.COMPARED_METRICS, "Runs of this sweep")
    parent.finish()
    return version


def _finish(
    cfg: DictConfig,
    parent: tracking.RunLogger,
    leaderboard: list[dict[str, Any]],
    experiment_dir: Path,
    state_file: Path,
    endpoint: str,
    base: list[str],
    resources: Mapping[str, float],
    members: list[str] | None = None,
) -> SweepOutcome:
    """Leaderboard artifacts, the final model of the best configuration (a refit, or its
    fold models as an ensemble when ``members`` are given), registration as champion.

    Registration is retried; when the store still does not take it, the sweep stops with
    it pending, and ``tune.resume=true`` completes it without training the model again.
    """
    if not leaderboard or not math.isfinite(leaderboard[0]["score"]):
        raise RuntimeError("no configuration finished all its folds: nothing to select")
    tune_cfg = cfg.tune
    keys = list(tune_cfg.space)
    table = experiment_dir / "leaderboard.tsv"
    write_table(leaderboard, table)
    figure = experiment_dir / "selection.png"
    plots.save_selection_plot(leaderboard, keys, figure)
    for path in (table, figure):
        tracking.with_retries(partial(parent.log_artifact, path, "leaderboard"))
    best = leaderboard[0]
    chosen = [override(k, best[k]) for k in keys]
    # The refit runs alone: on a local Ray it takes every core, on a cluster a trial's share.
    cpus = resources.get("cpu", 1.0)
    if cfg.ray.address is None:
        cpus = max(cpus, float(ray.cluster_resources().get("CPU", cpus)))
    task = ray.remote(num_cpus=cpus, num_gpus=resources.get("gpu", 0))
    folder = experiment_dir / ("refit" if members is None else "ensemble")
    final = _final_model(
        state_file,
        str(best["config_id"]),
        lambda: ray.get(
            task(final_model).remote(
                [*base, *chosen], str(folder), parent.run_id, int(cpus), members
            )
        ),
    )
    try:
        version = tracking.with_retries(
            lambda: _register(cfg, endpoint, parent, best, final, len(members or [])),
            REGISTRATION_TRIES,
        )
    except Exception as error:  # whatever the store raises, after every retry
        raise SweepInterrupted(
            f"the champion's registration is pending: the tracking store does not answer "
            f"({one_line(error, 160)}); complete it with tune.resume=true tune.name={tune_cfg.name}"
        ) from None
    return SweepOutcome(
        leaderboard, parent.run_id, experiment_dir, final["model_uri"], version, final["metrics"]
    )
