"""Teachers for STAT: one interface (base.Teacher), API / local-model / oracle backends; `build_teacher` picks
one from `teacher.kind`."""
from __future__ import annotations

from pathlib import Path

from skillexp.tasks.base import Task
from skillexp.teachers.base import Judgement, Proposal, SkillCatalogue, Teacher
from skillexp.teachers.config import TeacherConfig
from skillexp.utils.schema import ConfigError

__all__ = ["Judgement", "Proposal", "SkillCatalogue", "Teacher", "TeacherConfig", "build_teacher", "probe_teacher"]


def probe_teacher(cfg: TeacherConfig) -> None:
    """For an API teacher (`teacher.kind=openai`), one request at start-up that raises `TeacherAPIError` with the
    URL and the fix when the endpoint cannot be reached or refuses the key or the URL (openai_client.py)."""
    if cfg.kind != "openai":
        return
    from skillexp.teachers.openai_client import OpenAIChat

    backend = OpenAIChat(cfg.model or "", cfg.base_url, cfg.api_key_env, 1, 0, cfg.timeout_s)
    try:
        backend.probe()
    finally:
        backend.close()


def build_teacher(cfg: TeacherConfig, method: str, task: Task, cache_dir: Path, seed: int) -> Teacher:
    """The teacher `cfg` describes for `method`, on `task` (its answer format, and the oracle's rules); answers
    cached under `cache_dir/teacher` unless `cfg` says otherwise."""
    try:
        cfg.check_usable(method)  # also at start-up (config.load_run_config)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if cfg.kind == "oracle":
        from skillexp.teachers.oracle import oracle_teacher

        return oracle_teacher(task)
    from skillexp.teachers.chat import ChatBackend, LLMTeacher

    answers = None if not cfg.cache else Path(cfg.cache_dir or Path(cache_dir) / "teacher")
    backend: ChatBackend
    if cfg.kind == "openai":
        from skillexp.teachers.openai_client import OpenAIChat

        backend = OpenAIChat(cfg.model or "", cfg.base_url, cfg.api_key_env, cfg.concurrency, cfg.max_retries,
                             cfg.timeout_s, answers, cfg.max_tokens_param)
    else:
        from skillexp.teachers.local import LocalChat

        assert cfg.local_model is not None  # TeacherConfig checks it for kind=local
        backend = LocalChat(cfg.local_model, cfg.local_generation, str(cache_dir), answers, seed)
    return LLMTeacher(backend, task, cfg)
