#!/usr/bin/env bash
# Evaluate an untrained model: experiments/eval_base.sh MODEL [SUITE] [extra Hydra overrides...]
set -euo pipefail
model=${1:?usage: eval_base.sh MODEL [SUITE] [overrides...]}
suite=${2:-countdown}
shift $(( $# >= 2 ? 2 : 1 ))
py=${SKILLEXP_PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}  # outputs go under the current directory
exec "$py" -m skillexp model="$model" eval="$suite" method=none rl=none generation=vllm \
  tags="[base,$suite]" "$@"
