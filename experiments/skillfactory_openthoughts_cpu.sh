#!/usr/bin/env bash
# The CPU twin of skillfactory_openthoughts.sh: every row of SkillFactory's Table 2 as one local sweep on the tiny
# model, on generated stand-ins of OpenThoughts3 and the eval sets (nothing is downloaded), then the report in the
# paper's layout beside the paper's numbers for Qwen2.5-7B-Instruct. Under a minute on a 2-core AVX2 machine.
#   experiments/skillfactory_openthoughts_cpu.sh [extra Hydra overrides]
set -euo pipefail
py=${SKILLEXP_PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}  # outputs go under the current directory
sweep=${SKILLEXP_LOG_DIR:-outputs}/multiruns/skillfactory_openthoughts_cpu
data="$sweep/stand-in-data"
"$py" -m skillexp data prepare --stand-ins experiment=skillfactory_openthoughts_cpu --out "$data"
"$py" -m skillexp -m experiment=skillfactory_openthoughts_cpu \
  method=none,skillfactory_openthoughts,skillfactory_openthoughts_10k,qwq_distill seed=0 \
  paths.data_dir="$(cd "$data" && pwd)" hydra.sweep.dir="$sweep/runs" "$@"
"$py" -m skillexp report "$sweep" --paper-model qwen2.5-7b-instruct
