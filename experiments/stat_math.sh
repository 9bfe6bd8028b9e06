#!/usr/bin/env bash
# STAT's study on a Slurm cluster: the rows of its Table 3, each -> GRPO, 3 seeds: the base model (RL only), SFT on
# MATH-Train, MATH-Augment, MATH-Hard, Embed-Sel, Embed-Syn, STAT-Sel, STAT-Syn, every SFT set cut to 9.5k pairs
# (the continual rows, STAT-ConSel / ConSyn, are not built yet).
#   skillexp data prepare experiment=stat_math   # once, where the hub is reachable (docs/evaluation.md)
#   OPENAI_API_KEY=... experiments/stat_math.sh
set -euo pipefail
py=${SKILLEXP_PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}  # outputs go under the current directory
sweep=${SKILLEXP_LOG_DIR:-outputs}/multiruns/stat_math
status=0
"$py" -m skillexp -m hydra/launcher=slurm_gpu experiment=stat_math \
  method=none,sft,math_augment,math_hard,embed_sel,embed_syn,stat_sel,stat_syn \
  seed=0,1,2 hydra.sweep.dir="$sweep" "$@" || status=$?
# the sweep wrote its report unless a run failed; then report the runs that finished
[ "$status" -eq 0 ] || "$py" -m skillexp report "$sweep"
exit "$status"
