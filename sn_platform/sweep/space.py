"""Search spaces written in YAML, translated into Ray Tune distributions.

Each key is a config key (``optim.lr``) or a config group (``loss``); each value names one
distribution::

    model.base_filters: {choice: [8, 16, 32]}
    optim.lr: {loguniform: [1.0e-4, 1.0e-2]}
    loss: {grid: [dice, dice_bce]}
    trainer.warmup_epochs: {randint: [0, 3]}       # upper bound exclusive
    optim.weight_decay: {uniform: [0.0, 1.0e-3]}
    augment.transforms.1.p: {quniform: [0.0, 1.0, 0.25]}
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from ray import tune

DISTRIBUTIONS = ("choice", "grid", "uniform", "loguniform", "randint", "quniform")


def _domain(key: str, spec: Mapping[str, Any]) -> Any:
    if len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise ValueError(
            f"tune.space.{key}: give exactly one of {', '.join(DISTRIBUTIONS)}, got {dict(spec)}"
        )
    kind, arguments = next(iter(spec.items()))
    values = list(arguments)
    if kind in ("choice", "grid"):
        if not values:
            raise ValueError(f"tune.space.{key}: {kind} needs at least one value")
        return tune.grid_search(values) if kind == "grid" else tune.choice(values)
    expected = 3 if kind == "quniform" else 2
    if len(values) != expected:
        raise ValueError(f"tune.space.{key}: {kind} takes {expected} numbers, got {values}")
    if values[0] >= values[1] or (kind == "loguniform" and values[0] <= 0):
        raise ValueError(f"tune.space.{key}: invalid {kind} bounds {values}")
    return getattr(tune, kind)(*values)


def search_space(space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Ray Tune param space (distributions and ``grid_search`` dicts) of a YAML space."""
    return {str(key): _domain(str(key), spec) for key, spec in space.items()}


def is_grid(value: Any) -> bool:
    """Whether a param-space entry is a ``tune.grid_search``."""
    return isinstance(value, dict) and "grid_search" in value


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def sample_configurations(
    space: Mapping[str, Any], num_samples: int, seed: int
) -> list[dict[str, Any]]:
    """Every grid combination times ``num_samples`` random draws, as Tune's variant
    generator does, but drawn up front so each configuration can run on every fold.
    """
    if num_samples < 1:
        raise ValueError(f"tune.num_samples must be >= 1, got {num_samples}")
    rng = np.random.default_rng(seed)
    grid_keys = [k for k, v in space.items() if is_grid(v)]
    random_keys = [k for k in space if k not in grid_keys]
    combinations = itertools.product(*(space[k]["grid_search"] for k in grid_keys))
    configurations = []
    for combination in combinations:
        for _ in range(num_samples):
            configuration = dict(zip(grid_keys, combination, strict=True))
            for key in random_keys:
                configuration[key] = _plain(space[key].sample(random_state=rng))
            configurations.append(configuration)
    return configurations


def override(key: str, value: Any) -> str:
    """A Hydra command-line override ``key=value`` (lists as ``[a,b]``, None as null)."""
    return f"{key}={_format(value)}"


def _format(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[" + ",".join(_format(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)
