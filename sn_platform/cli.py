"""The platform's Hydra entry points; all of them compose the one ``conf/`` tree."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

OmegaConf.register_new_resolver("len", len, replace=True)
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


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def train(cfg: DictConfig) -> None:
    """``sn-train``: train one fold (issue #4)."""
    _not_built("sn-train", 4)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def sweep(cfg: DictConfig) -> None:
    """``sn-sweep``: cross-validated Ray Tune sweep (issue #5)."""
    _not_built("sn-sweep", 5)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def infer(cfg: DictConfig) -> None:
    """``sn-infer``: batch inference from the registered model (issue #6)."""
    _not_built("sn-infer", 6)
