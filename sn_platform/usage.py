"""A mistake on the command line as one line on stderr and exit code 2; a bug keeps its
traceback.

Exit codes of every entry point: 0 done, 1 a run that failed on its data or its storage
(subjects that failed, a full disk, an interrupted sweep), 2 a usage mistake (a config
key, value or group option, a dataset that is missing or incomplete).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, HydraException, OverrideParseException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from sn_platform.errors import UsageError, one_line

USAGE_MISTAKE = 2


def refuse(command: str, message: str) -> NoReturn:
    """Print ``command: message`` on stderr and exit with code 2."""
    print(f"{command}: {message}", file=sys.stderr)
    raise SystemExit(USAGE_MISTAKE)


def quote_plain_values(arguments: Sequence[str]) -> list[str]:
    """``arguments`` with each ``key=value`` that Hydra's grammar cannot read bare, but can
    in quotes, given quoted: a path with a letter outside ASCII or another character the
    grammar reserves (``input=/data/Müller (3T)``) is what it says, as in any other tool.
    Every other argument is left as it is (a list, a dict, a quoted value, a flag, or a
    value quoting does not mend, which Hydra then refuses on one line)."""
    parser = OverridesParser.create()
    quoted = []
    for argument in arguments:
        key, equals, value = argument.partition("=")
        candidate = argument
        if equals and value and not argument.startswith("-") and value[0] not in "[{'\"":
            quote = '"' if "'" in value else "'"
            if quote not in value and not value.endswith("\\"):
                candidate = f"{key}={quote}{value}{quote}"
        mended = candidate != argument and not _parses(parser, argument)
        quoted.append(candidate if mended and _parses(parser, candidate) else argument)
    return quoted


def _parses(parser: OverridesParser, argument: str) -> bool:
    """Whether Hydra's grammar reads ``argument`` (its lexer and parser raise alike)."""
    try:
        parser.parse_override(argument)
    except HydraException:
        return False
    return True


def override_problem(command: str, error: Exception) -> str:
    """One line for an override Hydra cannot parse or apply: the key, why, what to do."""
    if isinstance(error, OverrideParseException):
        reason = error.message.splitlines()[0][:120]  # the rest links Hydra's grammar page
        return f"{error.override}: not KEY=VALUE ({reason}); see {command} --help"
    cause = error.__cause__
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and cause.full_key:
        parent = cause.full_key.rpartition(".")[0]
        names = [str(n) for n in cause.parent_node or () if not str(n).startswith(("_", "hydra"))]
        known = f"; {parent or 'the config'} has {', '.join(names)}" if names else ""
        return f"{cause.full_key}: no such setting{known}; see {command} --help"
    reason = f": {one_line(cause)}" if cause is not None else ""
    return f"{one_line(error)}{reason}; see {command} --help"


@contextmanager
def one_line_mistakes(command: str) -> Iterator[None]:
    """Run a Hydra app: a usage mistake (a ``UsageError``, an override Hydra refuses) ends
    in one line and exit code 2; any other exception keeps its full traceback."""
    previous = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises instead of printing a stack trace
    try:
        yield
    except UsageError as error:
        refuse(command, one_line(error, 500))
    except (OverrideParseException, ConfigCompositionException) as error:
        refuse(command, override_problem(command, error))
    finally:
        if previous is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = previous
