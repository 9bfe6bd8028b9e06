# The two README commands. Both set up the environment first (idempotent: ~1 s when nothing changed).
# `make -f <checkout>/Makefile run` works from any directory: outputs go under the directory it runs in.
.PHONY: setup run test test-long bench clean

ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
PY := $(ROOT)/.venv/bin/python
export WANDB_MODE ?= offline

setup:
	@bash $(ROOT)/scripts/setup_env.sh

run: setup  ## the main job: the CPU study (every method -> GRPO -> eval, 2 seeds, then the report)
	$(PY) -m skillexp experiment=cpu_study $(ARGS)

test: setup  ## the test suite (CI's command; under 20 minutes on 2 cores): two workers, a test file each at a time
	cd $(ROOT) && $(PY) -m pytest -q -n 2 --dist loadfile $(PYTEST_ARGS)

test-long: setup  ## the long end-to-end tests the suite leaves out (SmolLM2 on every method; 16-33 minutes)
	cd $(ROOT) && $(PY) -m pytest -q -m long $(PYTEST_ARGS)

bench: setup
	$(PY) $(ROOT)/benchmarks/bench_scoring.py
	$(PY) $(ROOT)/benchmarks/bench_generation.py
	$(PY) $(ROOT)/benchmarks/bench_sft.py

clean:
	rm -rf outputs multirun .pytest_cache
