#!/usr/bin/env bash
# SkillFactory's OpenThoughts setting on a Slurm cluster: every row of its Table 2 (RL Only, SkillFactory 1k and
# 10k, QwQ distillation, each then GRPO) x 3 seeds, one GPU node per run (4 GPUs), then the report.
#   skillexp data prepare experiment=skillfactory_openthoughts   # once, where the hub is reachable (+ GPQA by hand)
#   experiments/skillfactory_openthoughts.sh [extra Hydra overrides, e.g. hydra.launcher.partition=a100]
# No teacher is asked: SkillFactory samples the student, QwQ distillation trains on the dataset's own traces.
set -euo pipefail
py=${SKILLEXP_PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}  # outputs go under the current directory
sweep=${SKILLEXP_LOG_DIR:-outputs}/multiruns/skillfactory_openthoughts
status=0
"$py" -m skillexp -m hydra/launcher=slurm_gpu hydra.launcher.gpus_per_node=4 experiment=skillfactory_openthoughts \
  method=none,skillfactory_openthoughts,skillfactory_openthoughts_10k,qwq_distill seed=0,1,2 \
  hydra.sweep.dir="$sweep" "$@" || status=$?
# the sweep wrote its report unless a run failed; then report the runs that finished
[ "$status" -eq 0 ] || "$py" -m skillexp report "$sweep" || true
exit "$status"
