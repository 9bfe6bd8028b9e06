"""Tasks by name. A config names a task as `{kind: <task>, ...params}`, parsed once into a `TaskSpec` when the
config is read; `build_task` validates the parameters against the task's config dataclass."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from skillexp.tasks.base import Item, Task
from skillexp.tasks.countdown import CountdownConfig, CountdownTask
from skillexp.tasks.gsm8k import Gsm8kConfig, Gsm8kTask
from skillexp.tasks.math import MathConfig, MathTask
from skillexp.tasks.multiple_choice import MultipleChoiceConfig, MultipleChoiceTask
from skillexp.tasks.multiplication import MultiplicationConfig, MultiplicationTask
from skillexp.tasks.openthoughts import OpenThoughtsConfig, OpenThoughtsTask
from skillexp.tasks.words import AcronymConfig, AcronymTask, LetterCountdownConfig, LetterCountdownTask
from skillexp.utils.schema import ConfigError, from_dict

__all__ = ["Item", "Task", "TASKS", "TaskSpec", "build_task", "default_name"]

TASKS: dict[str, tuple[type, type[Task]]] = {
    "countdown": (CountdownConfig, CountdownTask),
    "multiplication": (MultiplicationConfig, MultiplicationTask),
    "math": (MathConfig, MathTask),
    "openthoughts": (OpenThoughtsConfig, OpenThoughtsTask),
    "gsm8k": (Gsm8kConfig, Gsm8kTask),
    "multiple_choice": (MultipleChoiceConfig, MultipleChoiceTask),
    "acronym": (AcronymConfig, AcronymTask),
    "letter_countdown": (LetterCountdownConfig, LetterCountdownTask),
}


def default_name(task: str, cfg: Any) -> str:
    """The variant name used in metric keys when the config gives none: `countdown_4`, `multiplication_3`."""
    if isinstance(cfg, CountdownConfig):
        return f"{task}_{cfg.num_numbers}"
    if isinstance(cfg, MultiplicationConfig):
        return f"{task}_{cfg.digits}"
    if isinstance(cfg, (AcronymConfig, LetterCountdownConfig)):
        return f"{task}_{cfg.length}"
    return task


def build_task(task: str, params: Mapping[str, Any], name: str | None = None, path: str = "task") -> Task:
    """Construct task `task` from `params`; an unknown task or a bad parameter raises ConfigError naming it.

    Items are not built here (that happens once, on the first `items()` call), so validating every task of a
    config at start-up stays cheap.
    """
    if task not in TASKS:
        raise ConfigError(f"{path}.kind={task!r} is not a task; choose one of {sorted(TASKS)}.")
    cfg_cls, task_cls = TASKS[task]
    cfg = from_dict(cfg_cls, params, path)
    built = task_cls(cfg, name or default_name(task, cfg))
    built.config_path = path
    return built


@dataclass(frozen=True)
class TaskSpec:
    """A task as the config names it (`{kind: countdown, num_numbers: 4}`): its kind and its parameters. Schemas and
    records hold it parsed; the config, the keys and the saved run config hold `as_config()`."""

    kind: str
    params: Mapping[str, Any]

    @classmethod
    def from_config(cls, spec: Any, path: str) -> TaskSpec:
        """Parse `{kind: <task>, ...params}` at `path` (for errors); an unknown kind is refused with the choices."""
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{path} must be a mapping {{kind: <task>, ...params}}, got {spec!r}.")
        params = dict(spec)
        kind = params.pop("kind", None)
        if not isinstance(kind, str):
            raise ConfigError(f"{path}.kind is required: the task type, e.g. 'countdown', 'multiplication' or 'math'.")
        if kind not in TASKS:
            raise ConfigError(f"{path}.kind={kind!r} is not a task; choose one of {sorted(TASKS)}.")
        return cls(kind, params)

    def as_config(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.params}

    def build(self, name: str | None = None, path: str = "task") -> Task:
        """The task (its items are built on first use); `name` is the variant's name in metric keys."""
        return build_task(self.kind, self.params, name=name, path=path)
