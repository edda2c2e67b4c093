"""Networks from plain data, so a logged model can be rebuilt without Hydra."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from torch import nn


def build_module(config: Mapping[str, Any]) -> nn.Module:
    """A network from ``{"_target_": "package.Class", **constructor_arguments}``."""
    arguments = dict(config)
    module_name, _, class_name = str(arguments.pop("_target_")).rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)(**arguments)
