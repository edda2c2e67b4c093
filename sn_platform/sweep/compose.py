"""The training config of every trial: composed by Hydra from the sweep's training overrides,
with every path pinned, since trials run in their own folders (or on other nodes)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from sn_platform.composition import CONFIG_DIR
from sn_platform.errors import ConfigError, one_line

SWEEP_ONLY_PREFIXES = ("tune", "ray", "hydra")


def training_overrides(overrides: Sequence[str]) -> list[str]:
    """The command-line overrides that concern training (not ``tune.*``, ``ray.*``)."""
    kept = []
    for item in overrides:
        key = item.lstrip("+~").split("=", 1)[0]
        if re.split(r"[./]", key, maxsplit=1)[0] not in SWEEP_ONLY_PREFIXES:
            kept.append(item)
    return kept


def compose_training(overrides: Sequence[str]) -> DictConfig:
    """The training config (``conf/config.yaml``) with ``overrides``; bad keys -> ConfigError."""
    try:
        if GlobalHydra.instance().is_initialized():  # inside sn-sweep's own Hydra app
            return compose(config_name="config", overrides=list(overrides))
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(f"overrides {list(overrides)[-3:]}: {one_line(error, 1000)}") from None


def absolute(path: str | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())


def pinned_paths(cfg: DictConfig, tracking_uri: str) -> list[str]:
    """Overrides that pin every path to an absolute one: trials run in their own folders."""
    pinned = [
        f"data.root={absolute(cfg.data.root)}",
        f"data.splits.file={absolute(cfg.data.splits.file)}",
        f"tracking.uri={tracking_uri}",
    ]
    if cfg.tracking.artifact_location is not None:
        pinned.append(f"tracking.artifact_location={absolute(cfg.tracking.artifact_location)}")
    return pinned
