#!/usr/bin/env bash
# STAT's study on a Slurm cluster: the rows of its Table 3, each -> GRPO, 3 seeds: the base model (RL only), SFT on
# MATH-Train, MATH-Augment, MATH-Hard, Embed-Sel, Embed-Syn, STAT-Sel, STAT-Syn, every SFT set cut to 9.5k pairs;
# then its Fig. 3 as a second sweep: continual STAT-Sel / STAT-Syn (a new profile on MATH-perturb hard, SFT continued
# from the first sweep's STAT models, found in the stage cache; SFT only, as the figure). One report over both.
#   skillexp data prepare experiment=stat_math   # once, where the hub is reachable (docs/evaluation.md)
#   OPENAI_API_KEY=... experiments/stat_math.sh
set -euo pipefail
py=${SKILLEXP_PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}  # outputs go under the current directory
sweep=${SKILLEXP_LOG_DIR:-outputs}/multiruns/stat_math
status=0
"$py" -m skillexp -m hydra/launcher=slurm_gpu experiment=stat_math \
  method=none,sft,math_augment,math_hard,embed_sel,embed_syn,stat_sel,stat_syn \
  seed=0,1,2 hydra.sweep.dir="$sweep/table3" "$@" || status=$?
"$py" -m skillexp -m hydra/launcher=slurm_gpu experiment=stat_math method=stat_consel,stat_consyn rl=none \
  seed=0,1,2 hydra.sweep.dir="$sweep/fig3" "$@" || status=$?
"$py" -m skillexp report "$sweep"  # the runs that finished, in the paper's two layouts
exit "$status"
