"""The platform's Hydra entry points; all of them compose the package's ``conf/`` tree."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial, wraps
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import hydra
from omegaconf import DictConfig, OmegaConf

from sn_platform.composition import CONFIG_DIR, build
from sn_platform.cpu_quota import limit_threads_to_quota
from sn_platform.data.bids_filter import BidsFilter
from sn_platform.errors import ConfigError, StorageError, one_line
from sn_platform.usage import one_line_mistakes, quote_plain_values, refuse

if TYPE_CHECKING:
    from sn_platform.phantom.settings import PhantomConfig


def phantom_config(cfg: DictConfig) -> PhantomConfig:
    """The generator settings of a composed ``phantom`` config, with its chosen sites."""
    unknown = sorted(set(cfg.sites) - set(cfg.site_catalog))
    if unknown or not cfg.sites:
        raise ConfigError(
            f"sites: {unknown or 'none'} given; choose from {sorted(cfg.site_catalog)}, "
            "e.g. sites=[A,B]"
        )
    sites = tuple(build(cfg.site_catalog, str(name)) for name in cfg.sites)
    generator = build(cfg, "generator")
    try:
        return replace(generator, sites=sites)
    except ValueError as error:  # a site's field of view that cannot hold the midbrain
        raise ConfigError(f"sites: {one_line(error)}") from None


def _phantom_task(cfg: DictConfig) -> None:
    """``sn-phantom``: write a phantom BIDS cohort."""
    from sn_platform.phantom.writer import generate_cohort, remove_earlier_cohort

    if Path(cfg.out).exists() and not Path(cfg.out).is_dir():
        raise ConfigError(f"out: {cfg.out} is a file; give a folder, e.g. out=data/phantom")
    if int(cfg.n_jobs) < 1:
        raise ConfigError(f"n_jobs: {cfg.n_jobs} processes; give n_jobs=1 or more")
    start = time.perf_counter()
    settings = phantom_config(cfg)
    plans = generate_cohort(
        Path(cfg.out), settings, preview=bool(cfg.preview), n_jobs=int(cfg.n_jobs)
    )
    removed = remove_earlier_cohort(Path(cfg.out), (p.participant_id for p in plans))
    if removed:
        print(
            f"sn-phantom: removed {len(removed)} subject{'s' * (len(removed) > 1)} of an "
            f"earlier cohort from {cfg.out} (sub-{removed[0]} ...), not part of this one"
        )
    groups = {g: sum(p.group == g for p in plans) for g in ("HC", "PD")}
    print(
        f"sn-phantom: {len(plans)} subjects ({groups['HC']} HC, {groups['PD']} PD) "
        f"from sites {list(cfg.sites)} written to {Path(cfg.out).resolve()} "
        f"in {time.perf_counter() - start:.1f} s"
    )
    if cfg.preview:
        print(f"sn-phantom: montages in {Path(cfg.out).resolve() / 'derivatives' / 'preview'}")


GROUP_CHOICE = re.compile(r"^[+~]?(?P<group>[\w/]+)=(?P<option>[\w.-]+)$")


def check_group_choices(command: str, arguments: Sequence[str]) -> None:
    """Refuse ``group=option`` overrides naming an option that does not exist, on one line
    (Hydra's own message spans several lines and a stack-trace hint)."""
    for argument in arguments:
        match = GROUP_CHOICE.match(argument)
        if match is None:
            continue
        folder = Path(CONFIG_DIR) / match["group"]
        if folder.is_dir() and not (folder / f"{match['option']}.yaml").exists():
            options = sorted(p.stem for p in folder.glob("*.yaml"))
            refuse(
                command,
                f"{match['group']}: unknown option '{match['option']}'; "
                f"choose from {', '.join(options)}",
            )


def _entry(
    command: str, config_name: str, task: Callable[[DictConfig], None]
) -> Callable[[], None]:
    """A console script: check group choices, then run ``task`` as a Hydra app on the
    ``config_name`` config. A usage mistake ends on one line with exit code 2, whether
    Hydra refuses an override or the task refuses a value (caught inside the task, where
    Hydra would add its own line)."""

    @wraps(task)
    def guarded(cfg: DictConfig) -> None:
        with one_line_mistakes(command):
            task(cfg)

    app = hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name=config_name)(guarded)

    def main() -> None:
        sys.argv[1:] = quote_plain_values(sys.argv[1:])
        check_group_choices(command, sys.argv[1:])
        limit_threads_to_quota()  # before torch, NumPy or SimpleITK start their threads
        with one_line_mistakes(command):
            app()

    main.__doc__ = task.__doc__
    return main


phantom = _entry("sn-phantom", "phantom", _phantom_task)


def _train_task(cfg: DictConfig) -> None:
    """``sn-train``: train one fold (or all development subjects), evaluate, track."""
    from sn_platform import tracking
    from sn_platform.training.assembly import run_spec
    from sn_platform.training.run import train_and_evaluate

    try:
        spec = run_spec(cfg, tracking.load_segmenter_at)
        outcome = train_and_evaluate(spec)
    except StorageError as error:
        raise SystemExit(f"sn-train: {error}") from None
    shown = {k: round(v, 4) for k, v in outcome.metrics.items()}
    print(f"sn-train: best epoch {outcome.progress.best_epoch}; {shown}")
    if outcome.tracking_pending:
        folder = outcome.tracking_folder
        print(
            f"sn-train: the tracking store {spec.tracking.uri} did not answer; the run's history "
            f"is kept in {folder}; upload it later with: sn-track sync {folder}"
        )
    elif outcome.run_id is not None:
        print(f"sn-train: MLflow run {outcome.run_id} in {spec.tracking.uri}")
        if outcome.model_uri is not None:
            print(f"sn-train: model {outcome.model_uri} (also runs:/{outcome.run_id}/model)")
        if spec.tracking.uri.startswith("sqlite"):
            print(f"sn-train: browse with  mlflow ui --backend-store-uri {spec.tracking.uri}")
            page = tracking.runs_page(tracking.experiment_id(spec.tracking.experiment))
            print(f"sn-train: and open  http://127.0.0.1:5000/{page}")


train = _entry("sn-train", "config", _train_task)


def _sweep_task(cfg: DictConfig) -> None:
    """``sn-sweep``: a cross-validated Ray Tune sweep ending in a registered champion."""
    from hydra.core.hydra_config import HydraConfig

    from sn_platform import tracking
    from sn_platform.evaluation.tables import table_text
    from sn_platform.sweep.driver import SweepInterrupted, run_sweep
    from sn_platform.sweep.leaderboard import NothingToSelect

    try:
        outcome = run_sweep(cfg, list(HydraConfig.get().overrides.task))
    except (SweepInterrupted, NothingToSelect, StorageError) as error:
        raise SystemExit(f"sn-sweep: {error}") from None
    for line in outcome.placements:
        print(line)
    columns = ["rank", "config_id", *cfg.tune.space, "score", *cfg.tune.selection]
    rows = [{c: entry.get(c, "n/a") for c in columns} for entry in outcome.leaderboard]
    print(f"sn-sweep: leaderboard ({outcome.experiment_dir / 'leaderboard.tsv'})")
    print(table_text(rows), end="")
    shown = {k: round(v, 4) for k, v in outcome.refit_metrics.items()}
    how = "refit" if cfg.tune.final == "refit" else "fold ensemble"
    print(f"sn-sweep: the best configuration's {how}, on the test subjects: {shown}")
    print(
        f"sn-sweep: registered {cfg.tracking.model_name} version {outcome.model_version} "
        f"as models:/{cfg.tracking.model_name}@{cfg.tune.alias}; parent run {outcome.parent_run_id}"
    )
    if str(cfg.tracking.uri).startswith("sqlite"):
        print(f"sn-sweep: browse with  mlflow ui --backend-store-uri {cfg.tracking.uri}")
        page = tracking.runs_page(tracking.experiment_id(cfg.tracking.experiment))
        print(f"sn-sweep: and open  http://127.0.0.1:5000/{page}")


sweep = _entry("sn-sweep", "sweep", _sweep_task)


def _bids_filter(queries: DictConfig | None) -> BidsFilter:
    """``bids_filter`` of sn-infer's config, a malformed one a ConfigError."""
    try:
        return BidsFilter({} if queries is None else queries)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _infer_task(cfg: DictConfig) -> None:
    """``sn-infer``: segment a BIDS dataset with a logged or registered model."""
    from sn_platform import tracking
    from sn_platform.data.bids import scans_in_words
    from sn_platform.evaluation.cohort import group_effect_note, report_lines
    from sn_platform.inference.batch import (
        check_channels_present,
        local_engine,
        prepare,
        select_subjects,
        write_reports,
    )
    from sn_platform.inference.model_uris import check_model_uri
    from sn_platform.inference.options import BatchJob

    missing = [key for key in ("input", "output") if OmegaConf.is_missing(cfg, key)]
    if missing:
        raise ConfigError(f"give {' and '.join(f'{k}=PATH' for k in missing)}")
    uris = [cfg.model_uri] if isinstance(cfg.model_uri, str) else list(cfg.model_uri)
    job = BatchJob(
        Path(cfg.input),
        Path(cfg.output),
        build(cfg, "infer"),
        cfg.label_source,
        build(cfg, "measures"),
        cfg.truth_source,
        Path(cfg.labels_root) if cfg.get("labels_root") else None,
        _bids_filter(cfg.get("bids_filter")),
    )
    for uri in uris:
        check_model_uri(uri, bool(cfg.allow_remote_code))
    tracking_uri = tracking.absolute_uri(str(cfg.tracking.uri))
    load_segmenters = partial(tracking.load_segmenters, uris, tracking_uri)
    scans = select_subjects(job.root, cfg.subjects)
    try:
        segmenters = prepare(load_segmenters(), job.options)
    except Exception as error:  # MLflow raises many types for a bad URI
        raise ConfigError(
            f"model_uri: cannot load {uris} from {tracking_uri}: {one_line(error)}"
        ) from None
    check_channels_present(job.root, scans, segmenters[0].spec.channels, job.bids_filter)
    if job.options.engine == "ray":
        from sn_platform.inference.ray_engine import ray_engine

        engine = ray_engine(load_segmenters, job)
    else:
        engine = local_engine(segmenters, job)
    start = time.perf_counter()
    try:
        rows, errors = write_reports(job.output, engine(scans), uris, job.root)
    except StorageError as error:
        raise SystemExit(f"sn-infer: {error}; finished subjects are kept and skipped") from None
    flagged = sum(r["qc_flag"] != "ok" for r in rows)
    print(
        f"sn-infer: {len(rows)} of {len(scans)} {scans_in_words(scans)} segmented "
        f"({flagged} flagged for review) in {time.perf_counter() - start:.1f} s"
    )
    if (job.output / "agreement.json").exists():
        report = json.loads((job.output / "agreement.json").read_text())
        for line in report_lines(report, ("nm_volume_ratio", "chi_mean_ppm")):
            print(f"sn-infer: {line}")
        if note := group_effect_note(rows):
            print(f"sn-infer: {note}")
    for name in ("measures.tsv", "agreement.json", "index.html", "errors.tsv"):
        if (job.output / name).exists():
            print(f"sn-infer: {name:<16} {(job.output / name).resolve()}")
    if errors:
        failed = job.output / "errors.tsv"
        plural = "s" * (len(errors) > 1)
        raise SystemExit(f"sn-infer: {len(errors)} subject{plural} failed; see {failed}")


infer = _entry("sn-infer", "infer", _infer_task)


TRACK_EXAMPLES = """examples:
  sn-track sync checkpoints/sn-platform/train-fold0/tracking
  sn-track sync checkpoints/sn-platform/train-fold0/tracking --uri http://127.0.0.1:5000

docs: docs/howto-mlflow-server.md (sn-train prints the folder to sync)"""


class _OneLineParser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        refuse("sn-track", f"{message}; see {self.prog} --help")


def track(arguments: Sequence[str] | None = None) -> None:
    """``sn-track sync FOLDER [--uri URI]``: upload a run's buffered tracking history (the
    ``tracking/`` folder beside its checkpoints) once the store answers again."""
    from sn_platform import tracking

    parser = _OneLineParser(
        prog="sn-track",
        description="Upload a run's buffered tracking history once its store answers again.",
        epilog=TRACK_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="sync")
    sync = commands.add_parser("sync", help="deliver a run's buffered history to its store")
    sync.add_argument("folder", type=Path, help="the run's tracking folder")
    sync.add_argument("--uri", help="deliver to this store instead of the recorded one")
    args = parser.parse_args(arguments)
    before = tracking.buffer.Journal(args.folder)
    try:
        pending = before.pending() if before.exists() else 0
        state = tracking.sync(args.folder, args.uri)
    except FileNotFoundError as error:
        refuse("sn-track", f"{error}; give the tracking/ folder sn-train named")
    except Exception as error:  # the store's or the network's error, whatever its type
        raise SystemExit(
            f"sn-track: {args.folder}: the store does not take it yet ({one_line(error)})"
        ) from None
    print(
        f"sn-track: {pending} records delivered to {state['uri']}; run {state['run_id']}"
        + (f", model {state['model_uri']}" if state["model_uri"] else "")
    )
