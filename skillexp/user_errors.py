"""Mistakes on the command line, told in one or two lines that name the key, the place and the fix.

`python -m skillexp` / `skillexp` run Hydra with its full errors on and pass what it raises through `explain`:
a user's mistake (a misspelled key, a missing value, an unknown group option, a bad override) becomes a short
message and exit status 2; anything else is a bug and keeps its traceback. `SKILLEXP_DEBUG=1` (or Hydra's own
`HYDRA_FULL_ERROR=1`) shows the traceback for user errors too.
"""
from __future__ import annotations

import dataclasses
import difflib

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf.errors import (ConfigAttributeError, ConfigKeyError, InterpolationToMissingValueError,
                             MissingMandatoryValue)

from skillexp.config import MOVED_KEYS, RunConfig
from skillexp.tasks import TASKS
from skillexp.teachers.base import TeacherError
from skillexp.utils.schema import ConfigError, missing_value_message, unknown_key_message

DEBUG_HINT = "(SKILLEXP_DEBUG=1 shows the traceback)"


def _task_key_message(full_key: str) -> str:
    """A key under `task.` or an eval variant that the task's file does not set: misspelled, or a parameter that
    needs `+` (the task schema differs per task type, so composition cannot know it)."""
    leaf = full_key.rpartition(".")[2]
    params = sorted({f.name for cfg_cls, _ in TASKS.values() for f in dataclasses.fields(cfg_cls)})
    if leaf in params:
        return (f"'{full_key}' is not set by the task's config file: add it with '+{full_key}=...' (task parameters "
                f"differ per task type).")
    close = difflib.get_close_matches(leaf, params, n=2, cutoff=0.75)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"Unknown task parameter '{full_key}'.{hint} Task parameters: {', '.join(params)}."


def explain(e: BaseException) -> str | None:
    """The one- or two-line message for a user's mistake; None when `e` is not one (a bug: keep the traceback)."""
    if isinstance(e, ConfigError):
        return f"config error: {e}"
    if isinstance(e, TeacherError):
        return f"teacher error: {e}"
    if isinstance(e, MissingConfigException):
        group = (e.missing_cfg_file or "").rpartition("/")[0]
        options = [o for o in (e.options or []) if not o.startswith("_")]
        if group and options:
            choice = (e.missing_cfg_file or "").rpartition("/")[2]
            return (f"config error: {group}={choice} is not an option of '{group}'; choose one of: "
                    f"{', '.join(options)} (conf/{group}/).")
        return f"config error: {str(e).splitlines()[0]}"
    if isinstance(e, OverrideParseException):
        return f"command line error in '{e.override}': {e.message.splitlines()[0]}"
    cause = e.__cause__ if isinstance(e, ConfigCompositionException) else e
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and getattr(cause, "full_key", None):
        key = cause.full_key
        if key.startswith(("task.", "eval.variants.")):
            return f"config error: {_task_key_message(key)}"
        return f"config error: {unknown_key_message(RunConfig, key, MOVED_KEYS)}"
    if isinstance(cause, (MissingMandatoryValue, InterpolationToMissingValueError)):
        message = missing_value_message(cause)
        if message:
            return f"config error: {message}"
    if isinstance(e, ConfigCompositionException):
        return f"config error: {str(e).splitlines()[0]}"
    return None
