"""Teachers for STAT: one interface (base.Teacher), API / local-model / oracle backends; `build_teacher` picks
one from `teacher.kind`."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from skillexp.tasks.base import Task
from skillexp.teachers.base import Judgement, Proposal, SkillCatalogue, Teacher
from skillexp.teachers.config import TeacherConfig
from skillexp.utils.schema import ConfigError

if TYPE_CHECKING:
    from skillexp.config import RunConfig

__all__ = ["Judgement", "Proposal", "SkillCatalogue", "Teacher", "TeacherConfig", "build_teacher"]


def build_teacher(cfg: TeacherConfig, run: RunConfig, task: Task) -> Teacher:
    """The teacher `cfg` describes, for `task` (its answer format, and the oracle's rules)."""
    try:
        cfg.check_usable(run.method.name)  # also at start-up (config.load_run_config)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if cfg.kind == "oracle":
        from skillexp.teachers.oracle import oracle_teacher

        return oracle_teacher(task)
    from skillexp.teachers.chat import ChatBackend, LLMTeacher

    cache_dir = None if not cfg.cache else Path(cfg.cache_dir or Path(run.paths.cache_dir) / "teacher")
    backend: ChatBackend
    if cfg.kind == "openai":
        from skillexp.teachers.openai_client import OpenAIChat

        backend = OpenAIChat(cfg.model or "", cfg.base_url, cfg.api_key_env, cfg.concurrency, cfg.max_retries,
                             cfg.timeout_s, cache_dir)
    else:
        from skillexp.teachers.local import LocalChat

        assert cfg.local_model is not None  # TeacherConfig checks it for kind=local
        backend = LocalChat(cfg.local_model, cfg.local_generation, run.paths.cache_dir, cache_dir, run.seed)
    return LLMTeacher(backend, task, cfg)
