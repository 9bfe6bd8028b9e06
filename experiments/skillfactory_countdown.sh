#!/usr/bin/env bash
# SkillFactory's study on a Slurm cluster: every method x 3 seeds, one GPU node per run (4 GPUs, as the paper),
# then the report.
#   skillexp data prepare experiment=skillfactory_countdown   # once, where the hub is reachable
#   experiments/skillfactory_countdown.sh [extra Hydra overrides, e.g. hydra.launcher.partition=a100]
# Runs with the same seed share the base model's samples and the pre-RL evals through the stage cache (run it
# from a directory on a shared filesystem, or set SKILLEXP_LOG_DIR to one); a requeued run resumes where it stopped.
set -euo pipefail
py=${SKILLEXP_PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}  # outputs go under the current directory
sweep=${SKILLEXP_LOG_DIR:-outputs}/multiruns/skillfactory_countdown
status=0
"$py" -m skillexp -m hydra/launcher=slurm_gpu hydra.launcher.gpus_per_node=4 experiment=skillfactory_countdown \
  method=none,sft,star,skillfactory,skillfactory_no_reflections,skillfactory_no_prompt_diversity,skillfactory_no_sample_order \
  seed=0,1,2 hydra.sweep.dir="$sweep" "$@" || status=$?
# the sweep wrote its report unless a run failed; then report the runs that finished
[ "$status" -eq 0 ] || "$py" -m skillexp report "$sweep"
# the Instruction Prompt ablation (RL alone, the format described in the prompt): its own sweep and report
"$py" -m skillexp -m hydra/launcher=slurm_gpu hydra.launcher.gpus_per_node=4 experiment=skillfactory_countdown \
  method=none \
  rl.prompt=instruction eval.prompt=instruction seed=0,1,2 hydra.sweep.dir="$sweep-instruction_prompt" "$@" \
  || { status=$?; "$py" -m skillexp report "$sweep-instruction_prompt" || true; }
exit "$status"
