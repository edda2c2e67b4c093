"""sn-platform: V-Net segmentation of the substantia nigra and its NM/QSM measures."""

__version__ = "0.1.0"

from pathlib import Path

from omegaconf import OmegaConf

# The one Hydra config tree of every entry point and of every sweep trial.
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")

# ``${len:...}`` in conf/ (a model's in_channels = the number of echoes); registered on
# import so any process that composes the config (a Ray worker too) can resolve it.
OmegaConf.register_new_resolver("len", len, replace=True)
