#!/usr/bin/env bash
# SkillFactory's study on a Slurm cluster: every row of its Tables 6 and 7 (and 1, 5) x 3 seeds, one GPU node per
# run (4 GPUs, as the paper), then one report over all of them.
#   skillexp data prepare experiment=skillfactory_countdown   # once, where the hub is reachable
#   skillexp teacher estimate experiment=skillfactory_countdown method=distill teacher=deepseek_r1   # its cost
#   experiments/skillfactory_countdown.sh [extra Hydra overrides, e.g. hydra.launcher.partition=a100]
# Rows: the base model, STaR, SkillFactory and its App. C ablations, each before and after GRPO, and RL Only
# (method=none); R1 Distill (DeepSeek-R1's traces: $DEEPSEEK_API_KEY, or teacher=vllm_server for R1 you serve) and
# BOLT (GPT-4o-mini after 10 examples: $OPENAI_API_KEY), each before and after GRPO; the Instruction Prompt
# ablation. Qwen2.5-7B's and Olmo-3-7B's tables (8-11): the same with model=qwen2.5_7b_instruct / olmo3_7b.
# Runs with the same seed share the base model's samples and the pre-RL evals through the stage cache (run it
# from a directory on a shared filesystem, or set SKILLEXP_LOG_DIR to one); a requeued run resumes where it stopped.
set -euo pipefail
py=${SKILLEXP_PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}  # outputs go under the current directory
sweep=${SKILLEXP_LOG_DIR:-outputs}/multiruns/skillfactory_countdown
status=0
run_sweep() {  # one multirun into $sweep/<name>; a failed run fails the recipe, after the other sweeps ran
  local name=$1
  shift
  "$py" -m skillexp -m hydra/launcher=slurm_gpu hydra.launcher.gpus_per_node=4 experiment=skillfactory_countdown \
    seed=0,1,2 hydra.sweep.dir="$sweep/$name" "$@" || status=$?
}
run_sweep main \
  method=none,sft,star,skillfactory,skillfactory_no_reflections,skillfactory_no_prompt_diversity,skillfactory_no_sample_order \
  "$@"
run_sweep r1_distill method=distill teacher=deepseek_r1 "$@"
run_sweep bolt method=bolt teacher=openai "$@"
# the Instruction Prompt ablation: RL alone, the format described in the prompt
run_sweep instruction_prompt method=none rl.prompt=instruction eval.prompt=instruction "$@"
"$py" -m skillexp report "$sweep" || status=$?
exit "$status"
