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
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import ray
from omegaconf import DictConfig, OmegaConf
from ray import tune

from sn_platform import tracking
from sn_platform.composition import build
from sn_platform.data.augment import reads_tissues
from sn_platform.errors import ConfigError, folder_name, one_line
from sn_platform.evaluation import plots
from sn_platform.evaluation.tables import write_table
from sn_platform.inference.ray_engine import start_ray
from sn_platform.sweep.compose import absolute, compose_training, pinned_paths, training_overrides
from sn_platform.sweep.final import collect_fold_weights, refit_or_ensemble
from sn_platform.sweep.leaderboard import NothingToSelect, aggregate, check_selectable, rank
from sn_platform.sweep.registration import register_champion
from sn_platform.sweep.results import FinalResult, read_folds
from sn_platform.sweep.settings import TuneSettings
from sn_platform.sweep.space import override, sample_configurations, search_space
from sn_platform.sweep.state import SweepState
from sn_platform.sweep.trial import TrialSetup, placement, run_trial
from sn_platform.tracking.server import private_endpoint
from sn_platform.training.assembly import run_spec
from sn_platform.training.checks import check_run
from sn_platform.training.subjects import split_subjects

REGISTRATION_TRIES = 6  # 5 s apart: a restarted private server answers well within that


class SweepInterrupted(RuntimeError):
    """The sweep stopped before every trial ended (Ctrl-C, a lost driver): resume it."""


@dataclass
class SweepOutcome:
    """The ranked leaderboard, the parent run, the registered champion, and the device each
    trial trained on (``trial.placement``'s lines)."""

    leaderboard: list[dict[str, Any]]
    parent_run_id: str
    experiment_dir: Path
    model_uri: str
    model_version: str
    refit_metrics: dict[str, float]
    placements: list[str]


@dataclass(frozen=True)
class Champion:
    """The best configuration's leaderboard entry, its final model and its ensemble size
    (0: a refit)."""

    entry: dict[str, Any]
    final: FinalResult
    members: int


@dataclass(frozen=True)
class SweepRun:
    """The sweep's state, its parent MLflow run and the endpoint its runs log through."""

    state: SweepState
    parent: tracking.RunLogger
    endpoint: str


@dataclass(frozen=True)
class SweepPlan:
    """A checked sweep: its settings, folds, search space and where it lives."""

    cfg: DictConfig
    settings: TuneSettings
    space: dict[str, Any]
    folds: list[int]
    storage: Path

    @property
    def experiment_dir(self) -> Path:
        return self.storage / self.settings.name

    @property
    def state_file(self) -> Path:
        return SweepState.file(self.storage, self.settings.name)

    def resume_hint(self) -> str:
        return f"resume with tune.resume=true tune.name={self.settings.name}"


def run_sweep(cfg: DictConfig, overrides: Sequence[str]) -> SweepOutcome:
    """Run (or resume) the sweep ``cfg.tune`` describes; see the module docstring.

    Parameters
    ----------
    cfg : the composed ``sweep`` config (training config + ``tune`` + ``ray``)
    overrides : the command-line overrides; the training ones are passed to every trial
    """
    plan = prepare(cfg)
    uri = tracking.absolute_uri(str(cfg.tracking.uri))
    with private_endpoint(uri, absolute(cfg.tracking.artifact_location)) as endpoint:
        base = trial_overrides(plan, overrides, endpoint)
        param_space, searcher = _param_space(plan, base)
        tracking.configure(endpoint)
        run = SweepRun(*open_parent(plan, base), endpoint)
        with _ended(run.parent):
            _init_ray(cfg)
            grid = search(plan, run.state, base, param_space, searcher)
            placements = trial_placements(grid, plan.settings)
            leaderboard = collect(plan, run)
            members = ensemble_members(plan, grid, leaderboard[0])
            final = finalise(plan, run.state, leaderboard[0], base, members)
            version = register(plan, run, Champion(leaderboard[0], final, len(members or [])))
    tracking.configure(uri)  # the private server is gone; later calls use the store itself
    return SweepOutcome(
        leaderboard, run.parent.run_id, plan.experiment_dir, str(final.model_uri), version,
        final.metrics, placements,
    )  # fmt: skip


def trial_placements(grid: Any, settings: TuneSettings) -> list[str]:
    """One line per trial of the result grid: the device it trained on (``placement``)."""
    gpu_share = float(settings.resources_per_trial.get("gpu", 0))
    lines = []
    for result in grid:
        metrics = result.metrics or {}
        trial_id = str(metrics.get("trial_id") or Path(result.path).name)
        lines.append(placement(trial_id, result.config or {}, metrics, gpu_share))
    return sorted(lines)


def prepare(cfg: DictConfig) -> SweepPlan:
    """Check the settings, the data and what a resume finds; the plan. Raises ConfigError."""
    settings: TuneSettings = build(cfg, "tune")
    spec = run_spec(cfg)
    folder_name("tune.name", settings.name)
    if settings.cv.folds > spec.data.splits.folds:
        raise ConfigError(f"tune.cv.folds: {settings.cv.folds} not in 1..{spec.data.splits.folds}")
    check_run(spec)
    try:
        space = search_space(settings.space)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    storage = Path(settings.storage_path).expanduser().resolve()
    plan = SweepPlan(cfg, settings, space, list(range(settings.cv.folds)), storage)
    started = plan.state_file.exists() or tune.Tuner.can_restore(str(plan.experiment_dir))
    if settings.resume and not started:
        raise ConfigError(f"tune.resume: no sweep to resume in {plan.experiment_dir}")
    if not settings.resume and (started or plan.experiment_dir.exists()):
        raise ConfigError(
            f"tune.name: {plan.experiment_dir} exists; resume it with tune.resume=true "
            "or start another with tune.name=NEW"
        )
    splits = spec.data.splits
    new_splits = not Path(str(splits.file)).exists()
    if settings.final == "ensemble" and new_splits and splits.test_fraction <= 0:
        raise _no_test_split(f"data.splits.test_fraction is {splits.test_fraction}", "")
    # Validates the data (the tissue maps too where the augmentation reads them) and writes
    # the splits once.
    subjects = split_subjects(spec.data, spec.trainer.fold, reads_tissues(spec.augmentation))
    if settings.final == "ensemble" and not subjects.test:
        raise _no_test_split(f"{splits.file} holds none", " with a new data.splits.file")
    return plan


def _no_test_split(why: str, where: str) -> ConfigError:
    return ConfigError(
        f"tune.final=ensemble: the fold ensemble is evaluated on the test split, and {why}; "
        f"give data.splits.test_fraction > 0{where}, or tune.final=refit"
    )


def trial_overrides(plan: SweepPlan, overrides: Sequence[str], endpoint: str) -> list[str]:
    """The training overrides of every trial and of the final model, every path pinned, the
    data workers following a trial's CPU share unless ``data.num_workers`` is given."""
    base = [*training_overrides(overrides), *pinned_paths(plan.cfg, endpoint)]
    if plan.settings.resources_per_trial.get("gpu", 0) == 0:
        base.append("trainer.device=cpu")
    if not any(item.lstrip("+~").startswith("data.num_workers=") for item in base):
        base.append(f"data.num_workers={plan.settings.trial_data_workers}")
    return base


def _param_space(plan: SweepPlan, base: list[str]) -> tuple[dict[str, Any], Any]:
    """The Tune param space and search algorithm; checks every sampled config composes."""
    settings = plan.settings
    if settings.search_alg == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        if any(isinstance(v, dict) for v in plan.space.values()):
            raise ConfigError("tune.space: grid is not available with Optuna; use choice")
        searcher = OptunaSearch(metric=settings.metric, mode=settings.mode, seed=settings.seed)
        return plan.space, searcher
    configurations = sample_configurations(plan.space, settings.num_samples, settings.seed)
    variants = []
    for index, configuration in enumerate(configurations):
        sampled = [override(k, v) for k, v in configuration.items()]
        check_run(run_spec(compose_training([*base, *sampled])))
        for fold in plan.folds:
            variants.append(
                {"config_id": f"c{index:02d}", "folds": [fold], "overrides": configuration}
            )
    return {"variant": tune.grid_search(variants)}, None


def open_parent(plan: SweepPlan, base: list[str]) -> tuple[SweepState, tracking.RunLogger]:
    """The sweep's state and parent run: reopened on resume, else started and recorded."""
    state = SweepState.load(plan.state_file)
    if state is not None:
        return state, tracking.RunLogger.reopen(state.parent_run_id)
    cfg = plan.cfg
    parent = tracking.RunLogger.start(
        cfg.tracking.experiment,
        f"sweep-{plan.settings.name}",
        tags={"sn.kind": "sweep", "sn.tune_name": plan.settings.name},
        artifact_location=absolute(cfg.tracking.artifact_location),
    )
    state = SweepState(plan.state_file, parent.run_id)
    state.save()
    tune_settings = OmegaConf.to_container(cfg.tune, resolve=True)
    parent.log_params(tracking.flatten({"tune": tune_settings}))
    parent.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/sweep.yaml")
    parent.log_text("\n".join(base) + "\n", "config/training_overrides.txt")
    return state, parent


@contextlib.contextmanager
def _ended(parent: tracking.RunLogger) -> Iterator[None]:
    """End the parent run KILLED (resumable) or FAILED when the sweep stops early."""
    try:
        yield
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


def search(
    plan: SweepPlan, state: SweepState, base: list[str], param_space: dict[str, Any], searcher: Any
) -> Any:
    """Every configuration on every fold (Tune restores a started search); the result grid.
    Raises SweepInterrupted when trials are left."""
    settings = plan.settings
    trainable = tune.with_resources(
        tune.with_parameters(
            run_trial,
            setup=TrialSetup(
                base, state.parent_run_id, plan.folds, list(plan.space), settings.trial_threads,
                str(plan.experiment_dir), settings.metric,
            ),
        ),
        dict(settings.resources_per_trial),
    )  # fmt: skip
    if tune.Tuner.can_restore(str(plan.experiment_dir)):
        tuner = tune.Tuner.restore(str(plan.experiment_dir), trainable, resume_errored=True)
    else:  # a new sweep, or one whose driver was lost before Tune saved anything
        tuner = _new_tuner(plan, trainable, param_space, searcher)
    grid = tuner.fit()
    expected = settings.num_samples if searcher else len(param_space["variant"]["grid_search"])
    unfinished = _unfinished_trials(plan.experiment_dir, expected)
    if unfinished:
        raise SweepInterrupted(
            f"sweep stopped with {unfinished} of {expected} trials unfinished; {plan.resume_hint()}"
        )
    return grid


def _new_tuner(plan: SweepPlan, trainable: Any, param_space: dict[str, Any], searcher: Any) -> Any:
    settings = plan.settings
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=_scheduler(settings, int(plan.cfg.trainer.max_epochs)),
            num_samples=settings.num_samples if searcher else 1,
            max_concurrent_trials=settings.max_concurrent_trials,
            reuse_actors=settings.reuse_actors,
        ),
        run_config=tune.RunConfig(
            name=settings.name,
            storage_path=str(plan.storage),
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            verbose=settings.verbose,
        ),
    )


def _scheduler(settings: TuneSettings, max_epochs: int) -> Any:
    if settings.scheduler == "none":
        return None
    return tune.schedulers.ASHAScheduler(
        time_attr="training_iteration",
        metric=settings.metric,
        mode=settings.mode,
        max_t=max_epochs,
        grace_period=settings.grace_period,
        reduction_factor=settings.reduction_factor,
    )


def _unfinished_trials(experiment_dir: Path, expected: int) -> int:
    """Trials not yet ended, from the saved experiment state.

    After Ctrl-C Tune marks its trials TERMINATED in memory but saves the running ones as
    PENDING (to restart on resume), and never creates the trials not yet started.
    """
    trials = tune.ExperimentAnalysis(str(experiment_dir)).trials
    ended = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
    return expected - ended


def collect(plan: SweepPlan, run: SweepRun) -> list[dict[str, Any]]:
    """The recorded folds as a ranked leaderboard (its table and plot written and logged to
    the parent run, also when nothing can be selected: they say why); their journals
    delivered. Raises NothingToSelect, naming the table, when no configuration can be
    selected."""
    results = read_folds(plan.experiment_dir)
    _deliver_journals([r.tracking for r in results], run.endpoint, plan.resume_hint())
    settings = plan.settings
    leaderboard = rank(
        aggregate(results, len(plan.folds)),
        settings.selection,
        settings.mode,
        settings.min_structure_dsc,
        list(plan.cfg.data.labels),
    )
    table = plan.experiment_dir / "leaderboard.tsv"
    if leaderboard:
        figure = plan.experiment_dir / "selection.png"
        write_table(leaderboard, table)
        plots.save_selection_plot(leaderboard, list(settings.space), figure)
        for path in (table, figure):
            tracking.with_retries(partial(run.parent.log_artifact, path, "leaderboard"))
    try:
        check_selectable(leaderboard, settings.selection)
    except NothingToSelect as error:
        where = f" (leaderboard: {table})" if leaderboard else ""
        raise NothingToSelect(f"{error}{where}") from None
    return leaderboard


def _deliver_journals(folders: Sequence[str | None], endpoint: str, hint: str) -> None:
    """Deliver to ``endpoint`` what finished folds could not (their store was down when
    they ended, or a resumed sweep's server has a new port)."""
    for folder in folders:
        if not folder or not Path(folder).exists():
            continue
        try:
            tracking.with_retries(partial(tracking.sync, Path(folder), endpoint))
        except Exception as error:  # whatever the store raises, after every retry
            raise SweepInterrupted(
                f"{folder}: the tracking store does not take this trial's history "
                f"({one_line(error, 160)}); {hint}"
            ) from None


def ensemble_members(plan: SweepPlan, grid: Any, best: dict[str, Any]) -> list[str] | None:
    """The best configuration's fold weights (``tune.final=ensemble``), else None (a refit)."""
    if plan.settings.final != "ensemble":
        return None
    destination = plan.experiment_dir / "ensemble" / "members"
    return collect_fold_weights(grid, str(best["config_id"]), destination)


def finalise(
    plan: SweepPlan,
    state: SweepState,
    best: dict[str, Any],
    base: list[str],
    members: list[str] | None,
) -> FinalResult:
    """The final model of ``best``: recorded in ``state`` once trained (a resumed sweep never
    trains it again), else a refit or the ensemble of ``members``, alone on the cluster."""
    config_id = str(best["config_id"])
    recorded = state.final_of(config_id)
    if recorded is not None:
        return recorded
    chosen = [override(k, best[k]) for k in plan.settings.space]
    # The refit runs alone: on a local Ray it takes every core, on a cluster a trial's share.
    resources = plan.settings.resources_per_trial
    cpus = resources.get("cpu", 1.0)
    if plan.cfg.ray.address is None:
        cpus = max(cpus, float(ray.cluster_resources().get("CPU", cpus)))
    task: Any = ray.remote(num_cpus=cpus, num_gpus=resources.get("gpu", 0))
    folder = plan.experiment_dir / ("refit" if members is None else "ensemble")
    final: FinalResult = ray.get(
        task(refit_or_ensemble).remote(
            [*base, *chosen],
            str(folder),
            state.parent_run_id,
            max(1, int(cpus) - plan.settings.trial_data_workers),
            members,
        )
    )
    state.record_final(config_id, final)
    return final


def register(plan: SweepPlan, run: SweepRun, champion: Champion) -> str:
    """Register the final model as the champion (once: a resumed sweep finds the version in
    ``state``) and end the parent run; the version.

    Registration is retried; when the store still does not take it, the sweep stops with
    it pending, and ``tune.resume=true`` completes it without training the model again.
    """
    try:
        return tracking.with_retries(
            lambda: _register(plan, run, champion),
            REGISTRATION_TRIES,
        )
    except Exception as error:  # whatever the store raises, after every retry
        raise SweepInterrupted(
            f"the champion's registration is pending: the tracking store does not answer "
            f"({one_line(error, 160)}); complete it with {plan.resume_hint()}"
        ) from None


def _init_ray(cfg: DictConfig) -> None:
    # Each epoch's checkpoint forces a state snapshot by design (num_to_keep=1): no warning.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if int(cfg.tune.verbose) == 0:
        # Tune's newer console output prints its experiment box and paths even at verbose=0;
        # the older one is silent there.
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    start_ray(cfg.ray.address, cfg.ray.num_cpus)


def _register(plan: SweepPlan, run: SweepRun, champion: Champion) -> str:
    """Deliver the final run's journal, log the parent's summary and register the champion
    unless ``state`` holds its version; the version. Raises when the store does not take it."""
    final, best, parent, state = champion.final, champion.entry, run.parent, run.state
    if final.tracking:
        delivered = tracking.sync(Path(final.tracking), run.endpoint)
        final = replace(final, run_id=delivered["run_id"], model_uri=delivered["model_uri"])
    numeric = {k: float(v) for k, v in best.items() if isinstance(v, float) and math.isfinite(v)}
    parent.log_metrics({f"best/{k}": v for k, v in numeric.items()}, 0)
    parent.log_metrics(final.metrics, 0)
    if state.version is None:
        state.record_version(
            register_champion(plan.cfg, parent.run_id, best, final, champion.members)
        )
    version = str(state.version)
    parent.set_tags({"sn.champion_version": version})
    tracking.link_children(parent.run_id, tracking.COMPARED_METRICS, "Runs of this sweep")
    parent.finish()
    return version
