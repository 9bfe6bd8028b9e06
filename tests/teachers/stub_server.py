"""A real HTTP server on loopback that speaks the chat-completions shape, with scripted misbehaviour: the far end
of the OpenAI client in tests of retries, timeouts, crashes and key handling (one thread per request; its JSON
handler is the scripted teacher's).
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from skillexp.teachers.scripted import JSONHandler

Reply = Callable[[dict[str, Any]], str]


def echo_last_user(body: dict[str, Any]) -> str:
    return f"<answer>{body['messages'][-1]['content'][:40]}</answer>"


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a burst of concurrent clients (8 by default) could overflow it
    # and get "connection reset by peer", which a real server (vLLM's uvicorn: 2048) does not do
    request_queue_size = 128


class StubOpenAI:
    """`plan`: what the first requests get, in arrival order: an HTTP status (429, 500, 401...), "hang" (answer
    after `hang_s`), or "ok"; later requests get "ok". `die_after`: the server answers that many requests, then
    shuts down for good. `reply(body)` writes each completion's content; GET /v1/models lists `models`. Every
    request body and its Authorization header are kept (`bodies`, `auth`); `max_inflight` is the most requests
    seen at once."""

    def __init__(self, reply: Reply = echo_last_user, plan: list[int | str] | None = None, hang_s: float = 0.0,
                 delay_s: float = 0.0, die_after: int | None = None, echo_auth_in_errors: bool = False,
                 port: int = 0, models: tuple[str, ...] = ("stub-model",)):
        self.reply, self.plan, self.hang_s, self.delay_s = reply, list(plan or []), hang_s, delay_s
        self.die_after, self.echo_auth, self.models = die_after, echo_auth_in_errors, models
        self.bodies: list[dict[str, Any]] = []
        self.auth: list[str] = []
        self.inflight = self.max_inflight = 0
        self._lock = threading.Lock()
        self._stopped = self.dead = False
        self._server = _Server(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> StubOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._server.shutdown()
        self._server.server_close()

    def _next_action(self, body: dict[str, Any], auth: str) -> int | str:
        with self._lock:
            if self.dead:  # a request that slipped in before the socket closed gets no answer
                return "dead"
            self.bodies.append(body)
            self.auth.append(auth)
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            self.dead = self.die_after is not None and len(self.bodies) >= self.die_after
            return self.plan.pop(0) if self.plan else "ok"

    def _done(self) -> None:
        with self._lock:
            self.inflight -= 1

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        n = int(body.get("n") or 1)
        choices = [{"index": i, "message": {"role": "assistant", "content": self.reply(body)},
                    "finish_reason": "stop"} for i in range(n)]
        return {"id": "stub", "object": "chat.completion", "created": 0, "model": body.get("model"),
                "choices": choices, "usage": {"prompt_tokens": 7, "completion_tokens": 5 * n, "total_tokens": 7 + 5 * n}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(JSONHandler):
            def do_GET(self) -> None:  # noqa: N802 - the models list a start-up check asks for
                if self.path.rstrip("/").endswith("/v1/models"):
                    self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in stub.models]})
                else:
                    self._send(404, {"error": {"message": "not found", "type": "stub", "code": 404}})

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                auth = self.headers.get("Authorization", "")
                action = stub._next_action(body, auth)
                if action == "dead":
                    return
                if action == "hang":
                    time.sleep(stub.hang_s)
                time.sleep(stub.delay_s)
                try:
                    if isinstance(action, int):
                        detail = f"refused ({auth})" if stub.echo_auth else "refused"
                        self._send(action, {"error": {"message": detail, "type": "stub", "code": action}})
                    else:
                        self._send(200, stub.completion(body))
                except OSError:  # the client gave up (timeout) and closed the socket
                    pass
                stub._done()
                if stub.dead:  # stop serving and close the listening socket: later requests are refused
                    threading.Thread(target=stub.stop, daemon=True).start()

        return Handler
