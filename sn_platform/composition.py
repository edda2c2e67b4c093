"""The Hydra config tree that ships with the package, and its custom resolvers.

Every entry point and every sweep trial composes ``sn_platform/conf``; importing this
module registers ``${len:...}`` (a model's ``in_channels`` = the number of echoes), so any
process that composes the config (a Ray worker too) can resolve it.
"""

from pathlib import Path

from omegaconf import OmegaConf

CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")

OmegaConf.register_new_resolver("len", len, replace=True)
