"""What a `teacher=` config says: which backend answers STAT's teacher prompts, and how it is called.

The API key itself is never part of a config: `api_key_env` names the environment variable that holds it, so the
resolved config (written to the run dir and to W&B) carries only that name.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Annotated, Literal

from skillexp.generation.config import GenerationConfig
from skillexp.models.config import ModelConfig
from skillexp.utils.schema import AT_LEAST_1, FRACTION, NON_NEGATIVE, POSITIVE, UNKEYED


@dataclass
class TeacherPrice:
    """What the endpoint charges for `teacher.model`, in US dollars per million tokens: runs report an estimated
    cost from the tokens the endpoint counted, and the dry run (`skillexp teacher estimate`) one before any request."""

    input: Annotated[float, NON_NEGATIVE] = 0.0  # per million prompt tokens
    output: Annotated[float, NON_NEGATIVE] = 0.0  # per million completion tokens (a reasoning model's thinking too)
    source: str = ""  # where the prices were read, and when (they change)

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1e6


@dataclass
class TeacherConfig:
    # none: no teacher (methods that need one fail at start-up); openai: any OpenAI-compatible chat endpoint
    # (OpenAI, `vllm serve`, a gateway); local: a model on our generation backend; oracle: the task's
    # programmatic teacher (Countdown)
    kind: Literal["none", "openai", "local", "oracle"] = "none"
    model: str | None = None  # openai: the model name the endpoint serves (part of every cache key)
    # openai: null = api.openai.com ($OPENAI_BASE_URL, when set, is read at start-up into this key); e.g.
    # http://host:8000/v1. Keyed, and part of every cached answer's key: two servers that serve one model name may
    # serve different weights
    base_url: str | None = None
    # the NAME of the variable holding the key; unset is fine with base_url
    api_key_env: Annotated[str, UNKEYED] = "OPENAI_API_KEY"
    concurrency: Annotated[int, AT_LEAST_1, UNKEYED] = 8  # requests in flight at once
    # per request, on 408/409/429/5xx, time-outs and dropped connections (a refused one stops the run at once)
    max_retries: Annotated[int, NON_NEGATIVE] = 5
    # the share of an operation's requests that may fail (after their retries) before the step stops with the
    # failure counts; 0: any failure stops it. A stopped step saves nothing; its rerun sends only what failed
    max_failed_fraction: Annotated[float, FRACTION] = 0.0
    timeout_s: Annotated[float, POSITIVE] = 120.0  # per attempt
    # keep every completion on disk, keyed by model + messages + sampling parameters
    cache: Annotated[bool, UNKEYED] = True
    cache_dir: Annotated[str | None, UNKEYED] = None  # null: <paths.cache_dir>/teacher, shared by every run here
    # STAT labels and judges greedily (AdaptMI: do_sample False); proposals and solutions need diversity
    label_temperature: Annotated[float, NON_NEGATIVE] = 0.0
    judge_temperature: Annotated[float, NON_NEGATIVE] = 0.0
    propose_temperature: Annotated[float, NON_NEGATIVE] = 0.7
    solve_temperature: Annotated[float, NON_NEGATIVE] = 0.7
    max_tokens: Annotated[int, AT_LEAST_1] = 1024  # per completion, every operation
    # reasoning models' APIs: OpenAI's o-series and gpt-5 refuse `max_tokens` (they take max_completion_tokens) and
    # any temperature but their default; set these two for them (the request's other settings are unchanged)
    max_tokens_param: Annotated[Literal["max_tokens", "max_completion_tokens"], UNKEYED] = "max_tokens"
    send_temperature: bool = True  # false: the endpoint's default temperature, whatever an operation asks
    # what the endpoint charges, by model name (`teacher.model`): runs and the dry run estimate the cost from it
    prices: Annotated[dict[str, TeacherPrice], UNKEYED] = field(default_factory=dict)
    local_model: ModelConfig | None = None  # local: the teacher's weights (any `model=` option, e.g. a 7B)
    local_generation: GenerationConfig = field(default_factory=GenerationConfig)  # local: its engine

    def __post_init__(self) -> None:
        if self.kind == "openai" and not self.model:
            raise ValueError("teacher.model is required for teacher.kind=openai (the endpoint's model name).")
        if self.kind == "local" and self.local_model is None:
            raise ValueError("teacher.local_model is required for teacher.kind=local (e.g. a `model=` option).")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env):
            # the value is not echoed: a key pasted here by mistake must not reach a log
            raise ValueError("teacher.api_key_env must be the NAME of an environment variable (letters, digits, _); "
                             "put the key itself in that variable, never in a config.")

    def price(self) -> TeacherPrice | None:
        """The price of `model` in `prices`, or None when the config gives none (no cost is estimated)."""
        return self.prices.get(self.model or "")

    def check_usable(self, method: str) -> None:
        """That this teacher can serve `method` (which needs one), checked at start-up before the student samples
        anything: there is one, and the OpenAI API (no base_url) has its key in the environment."""
        if self.kind == "none":
            raise ValueError(f"method={method} needs a teacher: add teacher=oracle (Countdown), teacher=openai, "
                             "teacher=vllm_server or teacher=local.")
        if self.kind == "openai" and self.base_url is None and not os.environ.get(self.api_key_env):
            raise ValueError(f"teacher=openai calls api.openai.com, which needs a key: ${self.api_key_env} is not "
                             f"set. Export it, point teacher.api_key_env at the variable that holds it, or set "
                             f"teacher.base_url to a server that needs none.")
