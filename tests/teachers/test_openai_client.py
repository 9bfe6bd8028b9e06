"""The OpenAI-compatible backend against real HTTP servers on loopback that misbehave on purpose: rate limits and
server errors, a server that hangs, one that dies mid-run, and a client process killed mid-run. Nothing crashes,
failures are counted, what succeeded is cached, and a re-run sends only what is missing."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skillexp.teachers.chat import ChatCache
from skillexp.teachers.openai_client import OpenAIChat, TeacherAPIError
from tests.teachers.stub_server import StubOpenAI

CONVS = [[{"role": "user", "content": f"question {i}"}] for i in range(10)]
NO_KEY = "SKILLEXP_TEST_UNSET_KEY"


def _client(stub: StubOpenAI, cache: Path | None, **kw: object) -> OpenAIChat:
    return OpenAIChat("stub-model", stub.base_url, NO_KEY, cache_dir=cache, **{"max_retries": 2, **kw})


def _asked(stub: StubOpenAI) -> list[str]:
    return sorted(b["messages"][-1]["content"] for b in stub.bodies)


def test_requests_carry_model_and_sampling_parameters(tmp_path: Path) -> None:
    with StubOpenAI() as stub:
        chat = _client(stub, tmp_path / "cache", concurrency=3)
        out = chat.chat(CONVS[:6], n=2, temperature=0.5, max_tokens=17, seed=3)
        greedy = chat.chat(CONVS[6:7], temperature=0.0, max_tokens=5)
    assert out == [[f"<answer>question {i}</answer>"] * 2 for i in range(6)]
    assert greedy == [["<answer>question 6</answer>"]]
    body = stub.bodies[0]
    assert (body["model"], body["n"], body["temperature"], body["max_tokens"], body["seed"]) == (
        "stub-model", 2, 0.5, 17, 3)
    assert "seed" not in stub.bodies[-1]  # no seed sent unless asked for
    assert chat.counts["http/requests"] == 7 and chat.counts["chat/completed"] == 7
    assert chat.counts["openai/completion_tokens"] == 6 * 10 + 5 and "chat/failed" not in chat.counts
    assert NO_KEY in repr(chat)


def test_concurrency_is_limited_and_used(tmp_path: Path) -> None:
    with StubOpenAI(delay_s=0.4) as stub:
        chat = _client(stub, None, concurrency=4)
        start = time.perf_counter()
        out = chat.chat(CONVS[:8] + CONVS[:8][::-1])  # 16 conversations, 8 distinct
        elapsed = time.perf_counter() - start
    assert stub.max_inflight == 4 and len(stub.bodies) == 8
    assert chat.counts["chat/deduplicated"] == 8 and out[0] == out[15] == ["<answer>question 0</answer>"]
    assert elapsed < 8 * 0.4 * 0.75  # two waves of four, not eight sequential requests


def test_rate_limit_then_server_error_then_success(tmp_path: Path) -> None:
    with StubOpenAI(plan=[429, 500]) as stub:
        chat = _client(stub, tmp_path / "cache", concurrency=1, max_retries=3)
        out = chat.chat(CONVS[:2])
    assert out == [["<answer>question 0</answer>"], ["<answer>question 1</answer>"]]
    assert len(stub.bodies) == 4  # question 0 was sent three times
    assert chat.counts["http/status_429"] == 1 and chat.counts["http/status_500"] == 1
    assert chat.counts["chat/completed"] == 2 and "chat/failed" not in chat.counts


def test_exhausted_retries_are_counted_and_not_cached(tmp_path: Path) -> None:
    with StubOpenAI(plan=[503] * 3) as stub:
        chat = _client(stub, tmp_path / "cache", concurrency=1)
        first = chat.chat(CONVS[:2])
        assert first == [[], ["<answer>question 1</answer>"]]
        assert chat.counts["chat/failed"] == 1 and chat.counts["openai/error_InternalServerError"] == 1
        second = chat.chat(CONVS[:2])  # the failure was not cached: asked again, and the server is fine now
    assert second == [["<answer>question 0</answer>"], ["<answer>question 1</answer>"]]
    assert len(stub.bodies) == 3 + 1 + 1 and chat.counts["chat/cache_hits"] == 1


def test_a_hanging_server_times_out_without_stalling_the_rest(tmp_path: Path) -> None:
    with StubOpenAI(plan=["hang", "hang"], hang_s=6.0) as stub:
        chat = _client(stub, tmp_path / "cache", concurrency=1, max_retries=1, timeout_s=0.5)
        start = time.perf_counter()
        out = chat.chat(CONVS[:2])
        elapsed = time.perf_counter() - start
    assert out == [[], ["<answer>question 1</answer>"]]
    assert chat.counts["openai/error_APITimeoutError"] == 1 and chat.counts["http/requests"] == 3
    assert elapsed < 4.0


def test_a_server_that_dies_mid_run_stops_the_run_then_a_rerun_resumes_from_the_cache(tmp_path: Path) -> None:
    """Once the server is gone its port refuses connections: no retry can help, so the operation stops at once
    with the URL and the fix, keeping the answers it had; the rerun asks only for the rest."""
    cache = tmp_path / "cache"
    with StubOpenAI(die_after=4) as dying:
        chat = _client(dying, cache, concurrency=1, max_retries=3, timeout_s=2.0)
        start = time.perf_counter()
        with pytest.raises(TeacherAPIError, match=r"cannot be reached \(connection refused\).*teacher.base_url"):
            chat.chat(CONVS)
        elapsed = time.perf_counter() - start
        port = int(dying.base_url.rsplit(":", 1)[1].split("/")[0])
    assert len(ChatCache(cache)) == 4 and elapsed < 5  # not 6 questions x 4 attempts with backoff
    with StubOpenAI(port=port) as healthy:  # the server back at its address: the answers it gave are reused
        again = _client(healthy, cache).chat(CONVS)
    assert len(healthy.bodies) == 6 and again == [[f"<answer>question {i}</answer>"] for i in range(10)]
    with StubOpenAI(port=port) as third:
        assert _client(third, cache).chat(CONVS) == again
    assert third.bodies == []
    with StubOpenAI() as elsewhere:  # another server under the same model name may serve other weights
        assert _client(elsewhere, cache).chat(CONVS) == again
    assert len(elsewhere.bodies) == 10


def _closed_port() -> str:
    """A loopback URL nothing listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def test_the_start_up_probe_fails_in_seconds_on_a_dead_endpoint_and_passes_a_live_one() -> None:
    url = _closed_port()
    chat = OpenAIChat("stub-model", url, NO_KEY, max_retries=5)
    start = time.perf_counter()
    with pytest.raises(TeacherAPIError, match=f"{url} cannot be reached \\(connection refused\\): start the server"):
        chat.probe()
    assert time.perf_counter() - start < 2
    unknown = OpenAIChat("stub-model", "http://no-such-host.invalid/v1", NO_KEY, max_retries=5)
    with pytest.raises(TeacherAPIError, match="no-such-host.invalid/v1 cannot be reached"):
        unknown.probe()
    with StubOpenAI() as stub:
        _client(stub, None).probe()  # lists stub-model: nothing to say
        assert stub.bodies == []  # no completion was asked for
    with StubOpenAI() as stub:  # a URL that is not the API root (no /v1): its models list is a 404
        with pytest.raises(TeacherAPIError, match="HTTP 404.*usually ending in /v1"):
            OpenAIChat("stub-model", stub.base_url.removesuffix("/v1"), NO_KEY).probe()


def test_requests_retry_what_passes_and_stop_on_what_does_not() -> None:
    """The retry policy: time-outs, 408/409/429/5xx and dropped connections are tried again; a refused
    connection, an unknown host, 400/401/403/404 are not."""
    import httpx2
    import openai

    from skillexp.teachers.openai_client import transient, unreachable

    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")

    def status(code: int) -> openai.APIStatusError:
        return openai.APIStatusError("x", response=httpx2.Response(code, request=request), body=None)

    def connection(cause: str) -> openai.APIConnectionError:
        e = openai.APIConnectionError(request=request)
        e.__cause__ = httpx2.ConnectError(cause)
        return e

    assert all(transient(status(c)) for c in (408, 409, 429, 500, 502, 503))
    assert not any(transient(status(c)) for c in (400, 401, 403, 404, 422))
    assert transient(openai.APITimeoutError(request=request))
    assert transient(connection("Server disconnected without sending a response."))
    refused = connection("[Errno 111] Connection refused")
    unknown = connection("[Errno -2] Name or service not known")
    assert unreachable(refused) and unreachable(unknown) and not transient(refused) and not transient(unknown)


_KILLED_CLIENT = """
import sys
from skillexp.teachers.openai_client import OpenAIChat
convs = [[{"role": "user", "content": f"question {i}"}] for i in range(20)]
OpenAIChat("stub-model", sys.argv[1], "SKILLEXP_TEST_UNSET_KEY", concurrency=2, cache_dir=sys.argv[2]).chat(convs)
"""


def test_a_client_killed_mid_run_keeps_what_it_received(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with StubOpenAI(delay_s=0.3) as slow:
        proc = subprocess.Popen([sys.executable, "-c", _KILLED_CLIENT, slow.base_url, str(cache)])
        try:
            deadline = time.monotonic() + 60
            while (not cache.exists() or len(ChatCache(cache)) < 4) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        port = int(slow.base_url.rsplit(":", 1)[1].split("/")[0])
    kept = len(ChatCache(cache))
    assert 4 <= kept < 20
    for f in cache.glob("??/*.json"):  # every entry is whole; no temp file is mistaken for one
        assert len(json.loads(f.read_text())["texts"]) == 1
    convs = [[{"role": "user", "content": f"question {i}"}] for i in range(20)]
    with StubOpenAI(port=port) as healthy:  # the same endpoint: its answers are reused
        out = _client(healthy, cache).chat(convs)
    assert len(healthy.bodies) == 20 - kept and out == [[f"<answer>question {i}</answer>"] for i in range(20)]


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_refused_key_or_unknown_model_stops_the_run_at_once(tmp_path: Path, status: int) -> None:
    with StubOpenAI(plan=[status] * 20) as stub:
        chat = _client(stub, tmp_path / "cache", concurrency=2)
        with pytest.raises(TeacherAPIError, match=f"HTTP {status}.*{NO_KEY}"):
            chat.chat(CONVS)
    assert len(stub.bodies) <= 3  # no retries; one per worker (2), nothing queued is sent after the refusal


def test_api_openai_com_without_a_key_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NO_KEY, raising=False)
    with pytest.raises(TeacherAPIError, match=f"\\${NO_KEY}"):
        OpenAIChat("gpt-4o-mini", None, NO_KEY)
