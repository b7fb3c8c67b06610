"""The exceptions that report a user's mistake: one family, each naming the offending field.

    HGNError (ValueError)        the base: the `hgn` command catches it once and prints one line
      ConfigError                a config value, a config file, a preset, a command-line flag,
                                 an integrator or search-space definition
      DataError                  a dataset, split, physical system, renderer or frames file
      RunError                   a run folder: missing, unfinished, or holding another run
      ExportError                an export folder, version or cap
      ServingInputError          a request to a served model (the REST server answers 400)

Every error carries `field`, the name of the argument, flag, config key or request input at
fault (None where no single field is), and a message that names the field, the value received
and what is allowed. They subclass `ValueError`, so code that caught `ValueError` still does.

Errors that are not a user's mistake (a bug, a broken installation) are never of this family:
they surface with their traceback.

This module imports nothing from hgn_tf (the server, which must not import the training code,
uses it too).
"""

from __future__ import annotations

import numbers
import pathlib
import re
from typing import Any

__all__ = [
    "ConfigError",
    "DataError",
    "ExportError",
    "HGNError",
    "RunError",
    "ServingInputError",
    "check",
    "folder",
    "positive_int",
]


class HGNError(ValueError):
    """A user's mistake. `field` names the argument, flag, key or input at fault (or None).

    Without an explicit `field`, it is the first name the message quotes in backticks (the
    house style: "`n_steps` must be in [1, 1000], got 0."), up to any "=" or "[".
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        if field is None:
            quoted = re.search(r"`([^`=\[\s]+)", message)
            field = quoted.group(1) if quoted else None
        self.field = field


class ConfigError(HGNError):
    """A bad config value or file, preset, flag, integrator or search-space definition."""


class DataError(HGNError):
    """A bad dataset request, split, physical system, renderer input or frames file."""


class RunError(HGNError):
    """A run folder that is missing, unfinished, or holds another run."""


class ExportError(HGNError):
    """A bad export folder, version or serving cap."""


class ServingInputError(HGNError):
    """A bad request to a served model (HTTP 400)."""


def check(cond: bool, field: str, value: Any, allowed: str,
          error: type[HGNError] = ConfigError) -> None:
    """Raise `error` "`field` must be <allowed>, got <value>." unless `cond`."""
    if not cond:
        raise error(f"`{field}` must be {allowed}, got {value!r}.", field)


def positive_int(field: str, value: Any, error: type[HGNError] = ConfigError) -> int:
    """`value` as an int if it is a positive integer (not a bool), else `error` naming `field`."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0
    check(ok, field, value, "a positive integer", error)
    return int(value)


def non_negative_int(field: str, value: Any, error: type[HGNError] = ConfigError) -> int:
    """`value` as an int if it is an integer >= 0 (not a bool), else `error` naming `field`."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0
    check(ok, field, value, "a non-negative integer", error)
    return int(value)


def folder(field: str, path: Any, error: type[HGNError] = ConfigError) -> pathlib.Path:
    """`path` as a Path if it is a folder or can be made one, else `error` naming `field`.

    Refuses a path that is a file, or lies inside one, before anything is written.
    """
    path = pathlib.Path(path)
    for existing in (path, *path.parents):
        if existing.exists():
            if not existing.is_dir():
                where = "is" if existing == path else f"lies inside {str(existing)!r}, which is"
                raise error(f"`{field}` {str(path)!r} {where} a file, not a folder; give a "
                            "folder (it is created if missing).", field)
            break
    return path
