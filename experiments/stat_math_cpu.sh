#!/usr/bin/env bash
# The CPU twin of stat_math.sh: every SFT-data row of STAT's Table 3 (each followed by GRPO) as one local sweep on the
# tiny model, the continual pair of its Fig. 3 as a second sweep into the same directory, with the scripted teacher
# (an OpenAI-compatible server on loopback answering STAT's prompts on math questions, reasoning style, every 4th
# answer wrong) standing in for GPT-4o-mini, the shipped MiniLM as the embedder, generated stand-ins of the eval sets
# (nothing is downloaded); then the report in the paper's layout beside its numbers for Llama-3.2-3B-Instruct.
#   experiments/stat_math_cpu.sh [extra Hydra overrides]
set -euo pipefail
py=${SKILLEXP_PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}  # outputs go under the current directory
sweep=${SKILLEXP_LOG_DIR:-outputs}/multiruns/stat_math_cpu
data="$sweep/stand-in-data"
mkdir -p "$sweep"
"$py" -m skillexp data prepare --stand-ins experiment=stat_math_cpu --out "$data"
port_file="$sweep/teacher.port"
rm -f "$port_file"
"$py" -m skillexp.teachers.scripted --task math --port-file "$port_file" --style reasoning --wrong-every 4 \
  > "$sweep/teacher.log" 2>&1 &
teacher=$!
trap 'kill "$teacher" 2>/dev/null || true' EXIT
for _ in $(seq 600); do [ -s "$port_file" ] || ! kill -0 "$teacher" 2>/dev/null && break; sleep 0.1; done
[ -s "$port_file" ] || { echo "the scripted teacher did not start: $sweep/teacher.log" >&2; exit 1; }
data=$(cd "$data" && pwd)
url="http://127.0.0.1:$(cat "$port_file")/v1"
"$py" -m skillexp -m experiment=stat_math_cpu seed=0 paths.data_dir="$data" teacher.base_url="$url" \
  method=none,sft,math_augment,math_hard,embed_sel,embed_syn,stat_sel,stat_syn hydra.sweep.dir="$sweep/table3" "$@"
"$py" -m skillexp -m experiment=stat_math_cpu seed=0 paths.data_dir="$data" teacher.base_url="$url" \
  method=stat_consel,stat_consyn rl=none hydra.sweep.dir="$sweep/fig3" "$@"
"$py" -m skillexp report "$sweep" --paper-model llama-3.2-3b-instruct
