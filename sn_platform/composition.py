"""The Hydra config tree that ships with the package, its resolvers, and typed objects from it.

Every entry point and every sweep trial composes ``sn_platform/conf``; importing this
module registers ``${len:...}`` (a model's ``in_channels`` = the number of echoes) and
``${classes:...}`` (its ``out_channels`` from ``data.labels``), so any
process that composes the config (a Ray worker too) can resolve it.
"""

from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sn_platform.errors import ConfigError, one_line

CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")

OmegaConf.register_new_resolver("len", len, replace=True)
# Output channels of a network trained on these labels: one sigmoid channel for one label,
# else a softmax over background and each label.
OmegaConf.register_new_resolver(
    "classes", lambda labels: 1 if len(labels) == 1 else len(labels) + 1, replace=True
)


def build(cfg: DictConfig, key: str) -> Any:
    """``instantiate(cfg[key])``; a settings error becomes a ``ConfigError`` naming ``key``."""
    try:
        return instantiate(cfg[key], _convert_="all")
    except InstantiationException as error:
        raise ConfigError(f"{key}: {one_line(error.__cause__ or error)}") from None
