#!/usr/bin/env bash
# The CPU twin of skillfactory_countdown.sh: every row of SkillFactory's Table 6 as one local sweep on the tiny
# model, with the scripted teacher (an OpenAI-compatible server on loopback, reasoning style, every 4th answer
# wrong) standing in for DeepSeek-R1 and GPT-4o-mini, then the report in the paper's layout beside the paper's
# numbers for Qwen2.5-1.5B-Instruct. About a minute on a 2-core AVX2 machine (docs/studies.md).
#   experiments/skillfactory_countdown_cpu.sh [extra Hydra overrides]
set -euo pipefail
py=${SKILLEXP_PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}  # outputs go under the current directory
sweep=${SKILLEXP_LOG_DIR:-outputs}/multiruns/skillfactory_countdown_cpu
mkdir -p "$sweep"
port_file="$sweep/teacher.port"
rm -f "$port_file"
"$py" -m skillexp.teachers.scripted --port-file "$port_file" --style reasoning --wrong-every 4 \
  > "$sweep/teacher.log" 2>&1 &
teacher=$!
trap 'kill "$teacher" 2>/dev/null || true' EXIT
for _ in $(seq 600); do [ -s "$port_file" ] || ! kill -0 "$teacher" 2>/dev/null && break; sleep 0.1; done
[ -s "$port_file" ] || { echo "the scripted teacher did not start: $sweep/teacher.log" >&2; exit 1; }
"$py" -m skillexp -m experiment=skillfactory_countdown_cpu \
  method=none,sft,star,skillfactory,distill,bolt seed=0 \
  teacher.base_url="http://127.0.0.1:$(cat "$port_file")/v1" hydra.sweep.dir="$sweep/runs" "$@"
"$py" -m skillexp report "$sweep" --paper-model qwen2.5-1.5b-instruct
