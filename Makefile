# The two README commands. Both set up the environment first (idempotent: ~1 s when nothing changed).
.PHONY: setup run test bench clean

PY := .venv/bin/python
export WANDB_MODE ?= offline

setup:
	bash scripts/setup_env.sh

run: setup  ## the main job: a complete small study on the CPU with the embedded defaults
	$(PY) -m skillexp $(ARGS)

test: setup  ## the test suite
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/bench_scoring.py
	$(PY) benchmarks/bench_generation.py
	$(PY) benchmarks/bench_sft.py

clean:
	rm -rf outputs multirun .pytest_cache
