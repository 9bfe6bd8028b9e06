"""Time and peak memory of each method's SFT-data build at the CPU study's sizes (`experiment=cpu_study`).

Run: .venv/bin/python benchmarks/bench_sft_data.py [--methods sft,star,...] (default: every method that runs on
Countdown), or with `--task math` STAT's rows on the MATH-style set skillexp ships (its levels let math_hard run)
Each method's sft_data stage alone, in its own process, from an empty stage and sample cache (the base model's
engine is started inside the build, as in a run). On Countdown STAT asks the oracle (the study's teacher); distill
and bolt, and every teacher on `--task math`, ask the scripted teacher on loopback (skillexp/teachers/scripted.py),
whose answers cost it little, so their figures are the method's own work and the HTTP round trips, not a real
API's latency. Peak memory is the largest resident
size of the process and its children (the vLLM engine), sampled every 0.1 s.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = ("sft", "star", "skillfactory", "stat_sel", "stat_syn", "distill", "bolt", "math_augment", "embed_sel",
           "embed_syn")
MATH_METHODS = ("sft", "math_augment", "math_hard", "embed_sel", "embed_syn", "stat_sel", "stat_syn")
# the CPU study's sizes on the shipped MATH-style set (400 questions; the training split gets what is left)
MATH = ["task=math", "~task.num_numbers", "+task.answer_format=boxed"]


def tree_rss_gib(pid: int) -> float:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**30


def child(method: str, teacher_url: str | None, work: Path, task: str) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from skillexp import stages
    from skillexp.config import PROJECT_DIR, load_run_config, register_schemas
    from skillexp.models import resolve_model_dir
    from skillexp.pipeline import runtime, stage_inputs
    from skillexp.stage_cache import StageCache
    from skillexp.tracking import LoggerConfig, Tracker

    register_schemas()
    overrides = ["experiment=cpu_study", f"method={method}", f"paths.stage_cache_dir={work / 'stages'}",
                 "logger=none", *(MATH if task == "math" else [])]
    if teacher_url:
        overrides += ["teacher=scripted", f"teacher.base_url={teacher_url}", f"teacher.cache_dir={work / 'answers'}"]
    with initialize_config_dir(config_dir=str(PROJECT_DIR / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
    run = load_run_config(cfg)
    model_dir = resolve_model_dir(run.model, Path(run.paths.cache_dir))
    record = stage_inputs(run, StageCache(work / "stages", work / "run"), model_dir)["sft_data"]
    tracker = Tracker(LoggerConfig(backend="none"), work / "run", {})
    out = work / "sft_data"
    out.mkdir(parents=True)
    start = time.perf_counter()
    stages.get("sft_data").run(record, out, runtime(run, work / "run", tracker))
    seconds = time.perf_counter() - start
    tracker.finish()
    rows = sum(1 for _ in (out / "sft_data.jsonl").open())
    print("RESULT " + json.dumps({"method": method, "seconds": seconds, "rows": rows,
                                  "questions": run.method.num_questions}), flush=True)


def measure(method: str, teacher_url: str | None, task: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, __file__, "--child", method, "--work", tmp, "--task", task] + (
            ["--teacher", teacher_url] if teacher_url else [])
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
        peak = [0.0]

        def sample() -> None:
            while proc.poll() is None:
                peak[0] = max(peak[0], tree_rss_gib(proc.pid))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out = proc.communicate()[0]
        sampler.join()
        lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            raise SystemExit(f"{method} failed ({proc.returncode}):\n{out[-3000:]}")
        return {**json.loads(lines[-1][7:]), "peak_gib": peak[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", help=f"default: {','.join(METHODS)}; with --task math {','.join(MATH_METHODS)}")
    ap.add_argument("--task", choices=("countdown", "math"), default="countdown")
    ap.add_argument("--child")
    ap.add_argument("--work", type=Path)
    ap.add_argument("--teacher")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.teacher, args.work, args.task)
        return
    from benchmarks.machine import header
    from skillexp.tasks import build_task
    from skillexp.teachers.scripted import ScriptedTeacher, serve
    from skillexp.teachers.scripted_math import MathScript

    math = MathScript(build_task("math", {})) if args.task == "math" else None
    server = serve(ScriptedTeacher(style="reasoning", math=math))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    print(header("auto"))
    print(f"\ntask: {args.task}\n")
    print("| method | questions | SFT rows | build s | peak memory GiB |\n|---|---|---|---|---|")
    methods = args.methods or ",".join(MATH_METHODS if math else METHODS)
    for method in methods.split(","):
        asks = method in ("distill", "bolt") or (math is not None and method != "sft")
        r = measure(method, url if asks else None, args.task)
        print(f"| {method} | {r['questions']} | {r['rows']} | {r['seconds']:.1f} | {r['peak_gib']:.2f} |", flush=True)
    server.shutdown()


if __name__ == "__main__":
    main()
