"""The platform's Hydra entry points; all of them compose the one ``conf/`` tree."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="phantom")
def phantom(cfg: DictConfig) -> None:
    """``sn-phantom out=DIR subjects=30 seed=0 preview=true``: write a phantom BIDS cohort."""
    from sn_platform.data.cohort import generate_cohort

    unknown = sorted(set(cfg.sites) - set(cfg.site_catalog))
    if unknown:
        raise SystemExit(
            f"sn-phantom: unknown sites {unknown}; choose from {sorted(cfg.site_catalog)}"
        )
    sites = tuple(instantiate(cfg.site_catalog[name], _convert_="all") for name in cfg.sites)
    config = replace(instantiate(cfg.generator, _convert_="all"), sites=sites)
    start = time.perf_counter()
    plans = generate_cohort(
        Path(cfg.out), config, preview=bool(cfg.preview), n_jobs=int(cfg.n_jobs)
    )
    groups = {g: sum(p.group == g for p in plans) for g in ("HC", "PD")}
    print(
        f"sn-phantom: {len(plans)} subjects ({groups['HC']} HC, {groups['PD']} PD) "
        f"from sites {list(cfg.sites)} written to {Path(cfg.out).resolve()} "
        f"in {time.perf_counter() - start:.1f} s"
    )
    if cfg.preview:
        print(f"sn-phantom: montages in {Path(cfg.out).resolve() / 'derivatives' / 'preview'}")


def _not_built(command: str, issue: int) -> None:
    raise SystemExit(
        f"{command}: not built yet (tracked in issue #{issue}); sn-phantom works today"
    )


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
            raise SystemExit(
                f"{command}: unknown {match['group']} '{match['option']}'; "
                f"choose from {', '.join(options)}"
            )


def _guarded(command: str, app: Callable[[], None]) -> Callable[[], None]:
    """A console-script entry: check group choices, then run the Hydra app."""

    def main() -> None:
        check_group_choices(command, sys.argv[1:])
        app()

    main.__doc__ = app.__doc__
    return main


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _train_app(cfg: DictConfig) -> None:
    """``sn-train``: train one fold (or all development subjects), evaluate, track."""
    from sn_platform.data.bids import DataValidationError
    from sn_platform.experiment import ConfigError, train_and_evaluate

    try:
        outcome = train_and_evaluate(cfg)
    except (ConfigError, DataValidationError) as error:
        raise SystemExit(f"sn-train: {error}") from None
    shown = {k: round(v, 4) for k, v in outcome.metrics.items()}
    print(f"sn-train: best epoch {outcome.progress.best_epoch}; {shown}")
    if outcome.run_id is not None:
        print(f"sn-train: MLflow run {outcome.run_id} in {cfg.tracking.uri}")
        if outcome.model_uri is not None:
            print(f"sn-train: model {outcome.model_uri} (also runs:/{outcome.run_id}/model)")
        if str(cfg.tracking.uri).startswith("sqlite"):
            print(f"sn-train: browse with  mlflow ui --backend-store-uri {cfg.tracking.uri}")


train = _guarded("sn-train", _train_app)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="sweep")
def _sweep_app(cfg: DictConfig) -> None:
    """``sn-sweep``: a cross-validated Ray Tune sweep ending in a registered champion."""
    from hydra.core.hydra_config import HydraConfig

    from sn_platform.data.bids import DataValidationError
    from sn_platform.distributed.sweep import SweepInterrupted, run_sweep
    from sn_platform.evaluate import table_text
    from sn_platform.experiment import ConfigError

    try:
        outcome = run_sweep(cfg, list(HydraConfig.get().overrides.task))
    except (ConfigError, DataValidationError) as error:
        raise SystemExit(f"sn-sweep: {error}") from None
    except SweepInterrupted as error:
        raise SystemExit(f"sn-sweep: {error}") from None
    columns = ["rank", "config_id", *cfg.tune.space, "score", *cfg.tune.selection]
    rows = [{c: entry.get(c, "n/a") for c in columns} for entry in outcome.leaderboard]
    print(f"sn-sweep: leaderboard ({outcome.experiment_dir / 'leaderboard.tsv'})")
    print(table_text(rows), end="")
    shown = {k: round(v, 4) for k, v in outcome.refit_metrics.items()}
    print(f"sn-sweep: refit of the best configuration: {shown}")
    print(
        f"sn-sweep: registered {cfg.tracking.model_name} version {outcome.model_version} "
        f"as models:/{cfg.tracking.model_name}@{cfg.tune.alias}; parent run {outcome.parent_run_id}"
    )
    if str(cfg.tracking.uri).startswith("sqlite"):
        print(f"sn-sweep: browse with  mlflow ui --backend-store-uri {cfg.tracking.uri}")


sweep = _guarded("sn-sweep", _sweep_app)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def infer(cfg: DictConfig) -> None:
    """``sn-infer``: batch inference from the registered model (issue #6)."""
    _not_built("sn-infer", 6)
