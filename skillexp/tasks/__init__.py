"""Tasks by name. `build_task` validates a variant's parameters against the task's config dataclass."""
from __future__ import annotations

from typing import Any, Mapping

from skillexp.tasks.base import Item, Task
from skillexp.tasks.countdown import CountdownConfig, CountdownTask
from skillexp.tasks.math import MathConfig, MathTask
from skillexp.tasks.multiplication import MultiplicationConfig, MultiplicationTask
from skillexp.utils.schema import ConfigError, from_dict

__all__ = ["Item", "Task", "TASKS", "build_task"]

TASKS: dict[str, tuple[type, type[Task]]] = {
    "countdown": (CountdownConfig, CountdownTask),
    "multiplication": (MultiplicationConfig, MultiplicationTask),
    "math": (MathConfig, MathTask),
}


def default_name(kind: str, cfg: Any) -> str:
    if kind == "countdown":
        return f"countdown_{cfg.num_numbers}"
    if kind == "multiplication":
        return f"multiplication_{cfg.digits}"
    return kind


def build_task(kind: str, params: Mapping[str, Any], name: str | None = None, path: str = "task") -> Task:
    """Construct task `kind` from `params`; a bad kind or parameter raises ConfigError naming it."""
    if kind not in TASKS:
        raise ConfigError(f"{path}.kind={kind!r} is not a task; choose one of {sorted(TASKS)}.")
    cfg_cls, task_cls = TASKS[kind]
    cfg = from_dict(cfg_cls, params, path)
    return task_cls(cfg, name or default_name(kind, cfg))
