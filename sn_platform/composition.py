"""The Hydra config tree that ships with the package, its resolvers, and typed objects from it.

Every entry point and every sweep trial composes ``CONFIG_DIR``; importing this
module registers ``${len:...}`` (a model's ``in_channels`` = the number of channels) and
``${classes:...}`` (its ``out_channels`` from ``data.labels``), so any
process that composes the config (a Ray worker too) can resolve it.
"""

import dataclasses
from collections import abc
from collections.abc import Callable
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from sn_platform.errors import ConfigError, one_line


def _config_dir() -> str:
    """The Hydra config tree: ``sn_platform/conf`` in a wheel (the build maps the repository's
    ``conf/`` there), else ``conf/`` beside the package (a checkout or an editable install)."""
    package = Path(__file__).resolve().parent
    installed = package / "conf"
    return str(installed if (installed / "config.yaml").is_file() else package.parent / "conf")


CONFIG_DIR = _config_dir()

OmegaConf.register_new_resolver("len", len, replace=True)
# Output channels of a network trained on these labels: one sigmoid channel for one label,
# else a softmax over background and each label.
OmegaConf.register_new_resolver(
    "classes", lambda labels: 1 if len(labels) == 1 else len(labels) + 1, replace=True
)


def build(cfg: DictConfig, key: str) -> Any:
    """``instantiate(cfg[key])``; a value of the wrong type or a settings error becomes a
    ``ConfigError`` naming the key (``trainer.max_epochs: must be >= 1, got 0``)."""
    node = cfg[key]
    check_types(node, key)
    try:
        return instantiate(node, _convert_="all")
    except InstantiationException as error:
        cause = error.__cause__ or error
        if not isinstance(cause, (ValueError, TypeError, InstantiationException)):
            raise  # a bug in a constructor keeps its traceback
        raise ConfigError(_named(node, key, one_line(cause))) from None


def _named(node: DictConfig, key: str, message: str) -> str:
    """``message`` of a settings object, led by the full key of the field it starts with."""
    word = message.split(" ", 1)[0].rstrip(":")
    paths = [p for p in _leaf_paths(node) if p == word or p.endswith(f".{word}")]
    if not paths:
        return f"{key}: {message}"
    return f"{key}.{min(paths, key=len)}: {message[len(word) :].lstrip(' :')}"


def _leaf_paths(node: DictConfig, prefix: str = "") -> list[str]:
    paths = []
    for name, value in node.items_ex(resolve=False):
        path = f"{prefix}{name!s}"
        paths.append(path)
        if isinstance(value, DictConfig):
            paths += _leaf_paths(value, f"{path}.")
    return paths


def check_types(node: DictConfig, key: str) -> None:
    """Refuse a value whose type the ``_target_``'s annotation rules out (``'abc'`` for an
    int), naming its full key; nested ``_target_`` nodes are checked too."""
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return
    hints = _annotations(str(node._target_))
    for name, value in node.items():
        path = f"{key}.{name!s}"
        if isinstance(value, DictConfig) and "_target_" in value:
            check_types(value, path)
        elif str(name) in hints and not _fits(value, hints[str(name)]):
            expected = _describe(hints[str(name)])
            raise ConfigError(f"{path}: {value!r} is not {expected}; give {path}=<{expected}>")


def _annotations(target: str) -> dict[str, Any]:
    """Parameter name -> type hint of a class's settings (or a function's parameters)."""
    try:
        built = get_object(target)
        return get_type_hints(built if dataclasses.is_dataclass(built) else built.__init__)
    except Exception:  # an unresolvable hint is not checked; instantiate still reports
        return {}


_SCALARS: dict[Any, tuple[str, Callable[[Any], bool]]] = {
    type(None): ("null", lambda v: v is None),
    bool: ("true or false", lambda v: isinstance(v, bool)),
    int: ("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    float: ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    str: ("a name", lambda v: not isinstance(v, (DictConfig, ListConfig))),
}
_SEQUENCES = (tuple, list, abc.Sequence)
_MAPPINGS = (dict, abc.Mapping)


def _members(hint: Any) -> list[Any]:
    """The members of a union that a config value can be checked against."""
    members = get_args(hint) if get_origin(hint) in (Union, UnionType) else (hint,)
    return [m for m in members if m in _SCALARS or get_origin(m) in (*_SEQUENCES, *_MAPPINGS)]


def _fits(value: Any, hint: Any) -> bool:
    members = _members(hint)
    return not members or any(_fits_member(value, member) for member in members)


def _fits_member(value: Any, member: Any) -> bool:
    if member in _SCALARS:
        return _SCALARS[member][1](value)
    if get_origin(member) in _MAPPINGS:
        return isinstance(value, DictConfig)
    items = [a for a in get_args(member) if a is not Ellipsis]
    return isinstance(value, ListConfig) and all(
        _fits(item, items[min(i, len(items) - 1)]) for i, item in enumerate(value) if items
    )


def _describe(hint: Any) -> str:
    names = []
    for member in _members(hint):
        if member in _SCALARS:
            names.append(_SCALARS[member][0])
        elif get_origin(member) in _MAPPINGS:
            names.append("a mapping")
        else:
            items = [_describe(a) for a in get_args(member) if a is not Ellipsis]
            names.append(f"a list of {items[0].removeprefix('a ')}s" if items else "a list")
    return " or ".join(dict.fromkeys(names))
