"""`python -m skillexp.teachers.scripted`: an OpenAI-compatible chat server on loopback that answers Countdown
questions with the oracle's worked traces (teachers/oracle.py), or with `--task math` STAT's four prompts on a math
task's questions from their gold answers (teachers/scripted_math.py). It stands in for an API teacher (R1,
GPT-4o-mini) where none can be reached: the CPU twins of the paper recipes (experiments/*_cpu.sh) and the tests.

- A reply answers the question the last user turn states; a turn it cannot read gets a refusal.
- `--style think`: the reasoning inside the text as `<think>...</think>` (QwQ, or R1 served without a reasoning
  parser); `--style reasoning`: beside it in `reasoning_content`, as DeepSeek's API and vLLM's reasoning parser send
  it; `--style plain`: the answer alone.
- `--wrong-every N`: every N-th question (by a hash of its text, so the same ones every time; with `--task math`, of
  the text and the request's seed, so that one question's answers can disagree) gets a wrong answer, so that a
  method's correctness filter has something to drop. Labels, judgements and proposals are never made wrong.
- `--reasoning-api`: refuses `max_tokens` and any temperature but 1 with HTTP 400, as OpenAI's reasoning models do.
- Usage is reported per request (tokens counted as characters / 4), so runs meter it as they meter a real API.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from skillexp.tasks import build_task
from skillexp.teachers.oracle import OracleTeacher
from skillexp.teachers.scripted_math import MathScript

MAX_BODY = 8 << 20  # bytes of a request body read; larger ones are refused


def tokens(text: str) -> int:
    """A token count for usage reports: OpenAI's rule of thumb of four characters per token."""
    return max(1, len(text) // 4)


class ScriptedTeacher:
    """The replies: `reply(body) -> (status, payload)` for one chat-completions request body."""

    def __init__(self, model: str = "scripted-teacher", style: str = "think", wrong_every: int = 0,
                 reasoning_api: bool = False, math: MathScript | None = None):
        self.model, self.style, self.wrong_every, self.reasoning_api = model, style, wrong_every, reasoning_api
        self.oracle = OracleTeacher(build_task("countdown", {}))  # reads any stated question, 2 to 8 numbers
        self.math = math  # None: Countdown
        self.lock = threading.Lock()
        self.requests = 0

    def _refusal(self, param: str, detail: str) -> tuple[int, dict[str, Any]]:
        message = f"Unsupported parameter: '{param}' {detail}"
        return 400, {"error": {"message": message, "type": "invalid_request_error", "param": param}}

    def _wrong(self, question: str) -> bool:
        digest = int(hashlib.sha256(question.encode()).hexdigest()[:8], 16)
        return self.wrong_every > 0 and digest % self.wrong_every == 0

    def _text(self, messages: list[dict[str, str]], seed: int) -> tuple[str, str]:
        """(reasoning, content) of one reply."""
        if self.math is not None:
            prompt = str(messages[-1].get("content", "")) if messages else ""
            got = self.math.reply(prompt, seed)
            if got is None:
                return "", "I cannot answer this: I do not know this question."
            reasoning, content = got  # an answer comes with reasoning; labels, judgements and proposals without
            return reasoning, (self.math.wrong(content) if reasoning and self._wrong(f"{seed}:{prompt}") else content)
        traces = self.oracle.complete([messages], n=1, seed=seed)[0]
        if not traces:
            return "", "I cannot answer this: it states no Countdown question."
        trace = traces[0]
        if self._wrong(messages[-1].get("content", "")):
            trace = trace[: trace.rindex("<answer>")] + "<answer>1 + 1</answer>"
        reasoning, _, content = trace.removeprefix("<think>\n").partition("\n</think>\n\n")
        return reasoning, content

    def reply(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.reasoning_api and "max_tokens" in body:
            return self._refusal("max_tokens", "is not supported with this model. Use 'max_completion_tokens' "
                                               "instead.")
        if self.reasoning_api and body.get("temperature", 1) != 1:
            return self._refusal("temperature", "does not support this value with this model. Only the default "
                                                "(1) value is supported.")
        messages = [m for m in body.get("messages", []) if isinstance(m, dict)]
        n = max(1, min(int(body.get("n") or 1), 64))
        with self.lock:
            self.requests += 1
        choices, completion = [], 0
        for i in range(n):
            reasoning, content = self._text(messages, int(body.get("seed") or 0) * 64 + i)
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if self.style == "think" and reasoning:
                message["content"] = f"<think>\n{reasoning}\n</think>\n\n{content}"
            elif self.style == "reasoning" and reasoning:
                message["reasoning_content"] = reasoning
            completion += tokens(message["content"]) + tokens(message.get("reasoning_content", ""))
            choices.append({"index": i, "message": message, "finish_reason": "stop"})
        prompt = sum(tokens(str(m.get("content", ""))) for m in messages)
        return 200, {"id": f"scripted-{self.requests}", "object": "chat.completion", "created": 0,
                     "model": body.get("model", self.model), "choices": choices,
                     "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                               "total_tokens": prompt + completion}}


class JSONHandler(BaseHTTPRequestHandler):
    """A quiet request handler that answers in JSON (`_send`): the base of this server's and the tests' stub's."""

    def log_message(self, *args: object) -> None:  # keep the console quiet
        pass

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(teacher: ScriptedTeacher, port: int = 0) -> ThreadingHTTPServer:
    """A server for `teacher` on 127.0.0.1:`port` (0: any free one), not yet serving."""

    class Handler(JSONHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, {"object": "list", "data": [{"id": teacher.model, "object": "model"}]})
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:  # noqa: N802
            size = int(self.headers.get("Content-Length", 0))
            if not self.path.rstrip("/").endswith("/chat/completions") or size > MAX_BODY:
                self._send(404 if size <= MAX_BODY else 413, {"error": {"message": "not served"}})
                return
            try:
                body = json.loads(self.rfile.read(size) or b"{}")
            except ValueError:
                self._send(400, {"error": {"message": "the body is not JSON"}})
                return
            self._send(*teacher.reply(body if isinstance(body, dict) else {}))

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m skillexp.teachers.scripted", description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0, help="0: any free port")
    ap.add_argument("--port-file", type=Path, help="write the port here once the server listens")
    ap.add_argument("--model", default="scripted-teacher", help="the model name it serves")
    ap.add_argument("--style", choices=("think", "reasoning", "plain"), default="think")
    ap.add_argument("--wrong-every", type=int, default=0, help="every N-th question answered wrongly (0: none)")
    ap.add_argument("--reasoning-api", action="store_true", help="refuse max_tokens and temperatures but 1")
    ap.add_argument("--task", choices=("countdown", "math"), default="countdown",
                    help="math: STAT's prompts on a math task's questions (task=math's fields)")
    ap.add_argument("--data", help="--task math: the task's file (default: the MATH-style set skillexp ships)")
    args = ap.parse_args(argv)
    math = MathScript(build_task("math", {"path": args.data})) if args.task == "math" else None
    server = serve(ScriptedTeacher(args.model, args.style, args.wrong_every, args.reasoning_api, math), args.port)
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file.with_suffix(".tmp")
        tmp.write_text(str(port))
        tmp.replace(args.port_file)
    print(f"scripted teacher {args.model!r} at http://127.0.0.1:{port}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
