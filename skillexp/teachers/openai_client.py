"""Chat backend for any OpenAI-compatible endpoint (OpenAI, `vllm serve`, a gateway), on the official `openai`
client.

- Retries (`max_retries`) are for what passes: 408/409/429/5xx, time-outs and dropped connections, with
  exponential backoff from 0.5 s to 8 s and up to 25% jitter, honouring `Retry-After`. A request that still fails
  is counted (`chat/failed`, `openai/error_<kind>`) and comes back empty: a flaky API never ends a run.
- What every request would repeat raises `TeacherAPIError` at once: a rejected key, a forbidden or unknown model
  (401/403/404), and an endpoint that cannot be reached at all (connection refused, unknown host). `probe()`, one
  models-list request, finds the last two out at start-up (pipeline.py), in seconds.
- `concurrency` threads share one connection pool of that size; results reach the caller (and the cache) in the
  calling thread as they arrive.
- The key is read from the variable named by `api_key_env` and handed only to the client. Our messages and
  counters name the variable, never its value, and carry no server response bodies (OpenAI echoes part of a
  rejected key in its 401 body).
"""
from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Sequence

import httpx2  # the HTTP layer of openai 3.x
import openai

from skillexp.teachers.base import TeacherError
from skillexp.teachers.chat import ChatBackend, Conversation, OnResult

log = logging.getLogger(__name__)
_FATAL = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)
_UNREACHABLE = ("connection refused", "name or service not known", "nodename nor servname", "no address associated",
                "no route to host", "invalid url", "unsupported protocol")
BACKOFF_S = (0.5, 8.0)  # first and longest wait between retries
PROBE_TIMEOUT_S = 10.0


def unreachable(e: BaseException) -> bool:
    """A connection that no retry would make: refused, an unknown host, a URL that is not one."""
    if not isinstance(e, openai.APIConnectionError) or isinstance(e, openai.APITimeoutError):
        return False
    return any(marker in _reason(e).lower() for marker in _UNREACHABLE)


def transient(e: openai.APIError) -> bool:
    """Worth another try: a time-out, a dropped connection, 408/409/429 or a server error."""
    if isinstance(e, openai.APIStatusError):
        return e.status_code in (408, 409, 429) or e.status_code >= 500
    return isinstance(e, openai.APIConnectionError) and not unreachable(e)


def backoff_s(attempt: int, e: openai.APIError) -> float:
    """The wait before retry `attempt` (0-based): the server's Retry-After (up to a minute), else exponential
    with up to 25% jitter."""
    response = getattr(e, "response", None)
    try:
        after = float(response.headers.get("retry-after", "")) if response is not None else None
    except ValueError:
        after = None
    if after is not None and 0 <= after <= 60:
        return after
    return min(BACKOFF_S[1], BACKOFF_S[0] * 2 ** attempt) * (1 - 0.25 * random.random())


def _reason(e: openai.APIError) -> str:
    """Why a request failed, in a few words: "connection refused", "timed out", "HTTP 503"."""
    if isinstance(e, openai.APITimeoutError):
        return "timed out"
    if isinstance(e, openai.APIConnectionError):
        cause = e.__cause__
        while cause is not None and cause.__cause__ is not None:
            cause = cause.__cause__
        detail = str(cause or "") or type(cause).__name__
        return "connection refused" if "refused" in detail.lower() else f"connection failed ({detail[:120]})"
    if isinstance(e, openai.APIStatusError):
        return f"HTTP {e.status_code}"
    return type(e).__name__


# a parameter a reasoning model's API refuses (HTTP 400 naming it) -> what to set instead
PARAMETER_FIX = {
    "max_tokens": "set teacher.max_tokens_param=max_completion_tokens",
    "temperature": "set teacher.send_temperature=false (the model samples at its default temperature)",
}


def refused_parameter(e: openai.APIError) -> str | None:
    """The request parameter a 400 says the model does not support (`max_tokens`, `temperature`), or None. Only
    the parameter's name is taken from the response; its body is not repeated."""
    if not isinstance(e, openai.BadRequestError):
        return None
    message = str(getattr(e, "message", "") or "")[:2000].lower()
    if not re.search(r"unsupported|not supported|does not support", message):
        return None
    return next((p for p in PARAMETER_FIX if re.search(rf"\b{p}\b", message)), None)


def with_reasoning(message: Any) -> str:
    """A reply with its reasoning where the model wrote it: the content as it is when it holds a <think> block
    already (a server without a reasoning parser), else the `reasoning_content` (DeepSeek, vLLM) or `reasoning`
    field the endpoint sent beside it, put back in front as `<think>...</think>`: a distilled trace keeps what the
    student must learn."""
    content = message.content or ""
    extra = getattr(message, "model_extra", None) or {}
    reasoning = extra.get("reasoning_content") or extra.get("reasoning") or ""
    if not isinstance(reasoning, str) or not reasoning.strip() or "<think>" in content:
        return content
    return f"<think>\n{reasoning.strip()}\n</think>\n\n{content.lstrip()}"


class TeacherAPIError(TeacherError):
    """The endpoint refuses every request (bad key, no access, unknown model or URL)."""


class OpenAIChat(ChatBackend):
    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 8, max_retries: int = 5, timeout_s: float = 120.0,
                 cache_dir: str | Path | None = None, max_tokens_param: str = "max_tokens"):
        super().__init__(model, cache_dir, endpoint=base_url.rstrip("/") if base_url else None)
        self.max_tokens_param = max_tokens_param
        key = os.environ.get(api_key_env)
        if not key and base_url is None:
            raise TeacherAPIError(f"teacher.kind=openai without teacher.base_url calls api.openai.com, which needs "
                                  f"a key: set ${api_key_env} (or teacher.api_key_env to the variable holding it).")
        self.base_url, self.api_key_env, self.concurrency = base_url, api_key_env, concurrency
        self.max_retries = max_retries
        self._lock = threading.Lock()
        self._fatal: TeacherAPIError | None = None  # a refusal every request would repeat (401/403/404)
        http = openai.DefaultHttpx2Client(
            limits=httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            event_hooks={"request": [self._on_request], "response": [self._on_response]})
        # a local server started without --api-key accepts any bearer token; the client insists on one
        # the retries are ours (`_create`): the client's would also retry a refused connection, six times
        self._client = openai.OpenAI(api_key=key or "no-key", base_url=base_url, max_retries=0, timeout=timeout_s,
                                     http_client=http)

    @property
    def where(self) -> str:
        return self.base_url or "api.openai.com"

    def _unreachable_error(self, e: openai.APIError) -> TeacherAPIError:
        return TeacherAPIError(
            f"the teacher endpoint {self.where} cannot be reached ({_reason(e)}): start the server there (e.g. "
            f"`vllm serve {self.model_id} --port <port>`) or point teacher.base_url at one that runs.")

    def probe(self) -> None:
        """One models-list request, no retries: raise `TeacherAPIError` when the endpoint cannot be reached or
        refuses the key or the URL (404: not an OpenAI-compatible API root, which usually ends in /v1). A
        time-out or a server error passes: the requests' retries deal with those."""
        try:
            models = self._client.with_options(timeout=PROBE_TIMEOUT_S).models.list()
        except _FATAL as e:
            raise TeacherAPIError(
                f"the teacher endpoint {self.where} answered HTTP {e.status_code} ({type(e).__name__}) to a "
                f"models list: check teacher.base_url (an OpenAI-compatible root, usually ending in /v1) and the "
                f"key in ${self.api_key_env}.") from None
        except openai.APIError as e:
            if unreachable(e):
                raise self._unreachable_error(e) from None
            log.warning("teacher endpoint %s: the start-up check got %s; going on (requests are retried)",
                        self.where, _reason(e))
            return
        served = [m.id for m in getattr(models, "data", [])]
        if served and self.model_id not in served:
            log.warning("teacher endpoint %s does not list teacher.model=%r (it serves %s): its requests may be "
                        "refused", self.where, self.model_id, ", ".join(served[:5]))

    def _create(self, kwargs: dict[str, Any]) -> Any:
        """One chat completion, retried while its failure is transient."""
        attempt = 0
        while True:
            try:
                return self._client.chat.completions.create(**kwargs)
            except openai.APIError as e:
                if not transient(e) or attempt >= self.max_retries:
                    raise
                self._count("openai/retries")
                time.sleep(backoff_s(attempt, e))
                attempt += 1

    def __repr__(self) -> str:
        return f"OpenAIChat(model={self.model_id!r}, base_url={self.base_url!r}, key from ${self.api_key_env})"

    def _count(self, key: str, value: int = 1) -> None:
        if value:
            with self._lock:  # hooks and workers run in several threads
                self.counts[key] += value

    def _on_request(self, request: Any) -> None:
        self._count("http/requests")

    def _on_response(self, response: Any) -> None:
        if response.status_code >= 400:
            self._count(f"http/status_{response.status_code}")

    def _one(self, messages: Conversation, params: dict[str, Any]) -> list[str] | None:
        kwargs: dict[str, Any] = {"model": self.model_id, "messages": list(messages), "n": params["n"],
                                  self.max_tokens_param: params["max_tokens"]}
        if params["temperature"] is not None:  # None: the model's default (teacher.send_temperature=false)
            kwargs["temperature"] = params["temperature"]
        if params["seed"] is not None:
            kwargs["seed"] = params["seed"]
        if self._fatal is not None:  # a worker that picks up a queued request after the refusal sends nothing
            raise self._fatal
        try:
            response = self._create(kwargs)
        except _FATAL as e:
            self._fatal = TeacherAPIError(
                f"the teacher endpoint {self.base_url or 'api.openai.com'} answered HTTP {e.status_code} "
                f"({type(e).__name__}) for model {self.model_id!r}: check teacher.model, teacher.base_url and the "
                f"key in ${self.api_key_env}.")
            raise self._fatal from None
        except openai.APIError as e:  # retries exhausted, or a request the server will never accept
            if unreachable(e):  # every request would fail the same way: stop now, with the fix
                self._fatal = self._unreachable_error(e)
                raise self._fatal from None
            if (refused := refused_parameter(e)) is not None:  # so would a parameter the model does not take
                self._fatal = TeacherAPIError(
                    f"the teacher endpoint {self.where} refused the parameter {refused!r} for model "
                    f"{self.model_id!r} (HTTP 400), as reasoning models' APIs do: {PARAMETER_FIX[refused]}.")
                raise self._fatal from None
            self._count(f"openai/error_{type(e).__name__}")
            with self._lock:
                self.failures[_reason(e)] += 1
            return None
        choices = sorted(response.choices, key=lambda c: c.index)
        usage = response.usage
        if usage is not None:
            self._count("openai/prompt_tokens", usage.prompt_tokens or 0)
            self._count("openai/completion_tokens", usage.completion_tokens or 0)
        self._count("openai/truncated", sum(c.finish_reason == "length" for c in choices))
        self._count("openai/empty_content", sum(not c.message.content for c in choices))
        if not params.get("keep_reasoning"):
            return [c.message.content or "" for c in choices]
        texts = [with_reasoning(c.message) for c in choices]
        self._count("openai/reasoning_field", sum(t != (c.message.content or "") for t, c in zip(texts, choices)))
        return texts

    def _generate(self, conversations: Sequence[Conversation], params: dict[str, Any], on_result: OnResult) -> None:
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="teacher-api")
        try:
            futures = {pool.submit(self._one, conv, params): j for j, conv in enumerate(conversations)}
            for future in as_completed(futures):
                on_result(futures[future], future.result())
        finally:  # on TeacherAPIError or Ctrl-C: drop what has not started, let in-flight requests time out
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._client.close()
