# The two README commands. Both set up the environment first (idempotent: ~1 s when nothing changed).
.PHONY: setup run test bench clean

PY := .venv/bin/python
export WANDB_MODE ?= offline

setup:
	bash scripts/setup_env.sh

run: setup  ## the main job: the CPU study (every method -> GRPO -> eval, 2 seeds, then the report)
	$(PY) -m skillexp experiment=cpu_study $(ARGS)

test: setup  ## the test suite
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/bench_scoring.py
	$(PY) benchmarks/bench_generation.py
	$(PY) benchmarks/bench_sft.py

clean:
	rm -rf outputs multirun .pytest_cache
