"""Validate plain config mappings into typed dataclasses, with errors that name the key and the fix.

Hydra composes YAML into DictConfigs; this module turns one into a tree of dataclasses and rejects unknown keys
(suggesting the closest known one), wrong types, and values outside a `Literal[...]` (listing the allowed ones).
It is used at start-up so that a bad override fails in a second, not after an hour of sampling.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, Union

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value or key is wrong; the message names the full key and what is allowed."""


def parsed_value(tp: Any) -> bool:
    """Whether `tp` is a type the config holds in its own form (a mapping such as a task's `{kind: ..., params}`)
    and a schema holds parsed: it has `from_config(value, path)` and its instances `as_config()`, the inverse."""
    return isinstance(tp, type) and hasattr(tp, "from_config") and hasattr(tp, "as_config")


def to_plain(value: Any) -> Any:
    """The config form of a schema value, the inverse of `from_dict`: dataclasses as dicts of their fields,
    parsed values (`parsed_value`) as their `as_config()`, containers recursively."""
    if parsed_value(type(value)):
        return to_plain(value.as_config())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Range:
    """The values a number may take, as `Annotated[int, Range(1)]` in a schema: `low <= x <= high` (`<` where open);
    None is no bound. Checked by `from_dict`, which names the key, the value and the range."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def holds(self, x: float) -> bool:
        if self.low is not None and (x <= self.low if self.open_low else x < self.low):
            return False
        return self.high is None or (x < self.high if self.open_high else x <= self.high)

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.open_low else '>='} {self.low:g}"
        if self.low is None:
            return f"{'<' if self.open_high else '<='} {self.high:g}"
        return f"in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"


@dataclass(frozen=True)
class Unkeyed:
    """Marks a setting that changes how a stage runs (logging, checkpoint cadence, workers, labels) but never what
    it computes, as `Annotated[int, UNKEYED]`: it is left out of stage cache keys (`stage_cache.key_data`)."""


UNKEYED = Unkeyed()


def keyed(cls: type, name: str) -> bool:
    """Does field `name` of schema `cls` count in stage cache keys?"""
    return name not in _unkeyed(cls)


@functools.cache
def _unkeyed(cls: type) -> frozenset[str]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return frozenset(name for name, hint in hints.items()
                     if typing.get_origin(hint) is typing.Annotated and UNKEYED in typing.get_args(hint)[1:])


# the ranges most settings need
AT_LEAST_1 = Range(1)  # counts, sizes, steps, token budgets
NON_NEGATIVE = Range(0)  # 0 means off / none
POSITIVE = Range(0, open_low=True)  # learning rates, time-outs, epsilons
FRACTION = Range(0, 1)  # probabilities, ratios, thresholds on [0, 1] scores


class UnknownKeyError(ConfigError):
    """A key the schema does not have; `full_key` is its dotted path."""

    def __init__(self, message: str, full_key: str):
        super().__init__(message)
        self.full_key = full_key


def missing_value_message(error: Exception) -> str | None:
    """For OmegaConf's error on a `???` value (also when an interpolation reads one): the key and the fix."""
    found = re.search(r"Missing mandatory value: ?([\w.\[\]]+)", str(error))
    key = found.group(1) if found else getattr(error, "full_key", None)
    return f"'{key}' has no value: set it on the command line ({key}=...)." if key else None


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if parsed_value(tp):
        return value if isinstance(value, tp) else tp.from_config(value, path)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(tp)
        value = _convert(base, value, path)
        for rule in meta:
            if isinstance(rule, Range) and value is not None and not rule.holds(value):
                raise ConfigError(f"{path}={value!r} is out of range: it must be {rule}.")
        return value
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{path}={value!r} is not allowed; choose one of {list(args)}.")
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}={value!r} matches none of {args}: {errors}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a mapping of {tp.__name__} fields, got {value!r}.")
        return from_dict(tp, value, path)
    if origin in (list, tuple) or tp in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list, got {value!r}.")
        inner = args[0] if args else Any
        return [_convert(inner, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a mapping, got {value!r}.")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _convert(vt, v, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true or false, got {value!r}.")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} must be an integer, got {value!r}.")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path} must be a number, got {value!r}.")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} must be a string, got {value!r}.")
        return value
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], path: str = "") -> T:
    """Build dataclass `cls` from `data`, validating recursively. `path` prefixes keys in error messages."""
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        full = f"{path}.{key}" if path else str(key)
        if key not in fields:
            raise UnknownKeyError(
                f"Unknown config key '{full}'.{_suggest(str(key), list(fields))} "
                f"Allowed keys here: {sorted(fields)}.", full
            )
        kwargs[key] = _convert(hints[key], value, full)
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        where = path or cls.__name__
        raise ConfigError(f"Missing required config key(s) {missing} in '{where}'.")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:  # __post_init__ checks
        where = path or cls.__name__
        raise ConfigError(str(e) if str(e).startswith(where) else f"{where}: {e}") from e


def _dataclass_of(tp: Any) -> type | None:
    if typing.get_origin(tp) in (Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = inner[0] if len(inner) == 1 else None
    return tp if dataclasses.is_dataclass(tp) and not parsed_value(tp) else None


def schema_tree(cls: type, prefix: str = "", out: dict | None = None) -> dict[str, list[str]]:
    """Each typed section of a schema ("" for the top, "model", "eval.sampling", ...) -> its keys. Free-form
    mappings (a run's `task`, `eval.variants`) have no entry: their keys are checked by each task's schema."""
    out = {} if out is None else out
    hints = typing.get_type_hints(cls)
    out[prefix.rstrip(".")] = sorted(hints)
    for name, tp in hints.items():
        inner = _dataclass_of(tp)
        if inner is not None:
            schema_tree(inner, f"{prefix}{name}.", out)
    return out


def suggest_keys(root: type, full_key: str) -> list[str]:
    """Known keys close to `full_key`: a sibling with a near-identical name, else keys anywhere in the schema
    whose last part is close (`model.temprature` -> `eval.sampling.temperature`, ...)."""
    tree = schema_tree(root)
    parent, _, leaf = full_key.rpartition(".")
    close = difflib.get_close_matches(leaf, tree.get(parent, []), n=1, cutoff=0.85)
    if close:
        return [f"{parent}.{close[0]}" if parent else close[0]]
    by_leaf: dict[str, list[str]] = {}
    for section, names in tree.items():
        for name in names:
            by_leaf.setdefault(name, []).append(f"{section}.{name}" if section else name)
    names = difflib.get_close_matches(leaf, list(by_leaf), n=2, cutoff=0.75)
    return [k for name in names for k in sorted(by_leaf[name])][:4]


def unknown_key_message(root: type, full_key: str, moved: Mapping[str, str] | None = None) -> str:
    """The message for a key that `root`'s schema does not have, with the closest known keys (or, for a key that
    `moved` maps, where it lives now)."""
    close = [moved[full_key]] if moved and full_key in moved else suggest_keys(root, full_key)
    hint = f" Did you mean {' or '.join(repr(k) for k in close)}?" if close else ""
    parent = full_key.rpartition(".")[0]
    siblings = schema_tree(root).get(parent)
    if parent and siblings:
        return f"Unknown config key '{full_key}'.{hint} Keys of '{parent}': {', '.join(siblings)}."
    return f"Unknown config key '{full_key}'.{hint}"
