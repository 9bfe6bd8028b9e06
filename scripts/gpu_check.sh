#!/usr/bin/env bash
# The GPU check (docs/training.md#the-gpu-check): SFT (ZeRO-2, ZeRO-3), GRPO with HF rollouts, LoRA, QLoRA (when
# bitsandbytes imports) and the eval stage on the tiny model through `python -m skillexp`, bf16, on a CUDA GPU; then
# the memory plan against torch.cuda.max_memory_allocated on a random 0.85B model. Prints a PASS/FAIL/SKIP table,
# writes ${OUT:-gpu_check_out}/gpu_check.json (+ gpu_check.log, gpu_check_setup.log); exits 1 when a step that ran
# failed, 0 on a machine without CUDA ("no CUDA device: nothing to check"). Within 8 minutes on one GPU (setup
# about 10 s, then the steps stop at --budget-s, 400 s by default; 155 s on an H200, docs/training.md#the-gpu-check).
#
# Usage: bash scripts/gpu_check.sh [WHEELS_DIR] [gpu_check.py options: --jobs N --budget-s S --only a,b ...]
#        bash scripts/gpu_check.sh --dry-run [--validate]      the steps' commands; nothing is installed or run
# WHEELS_DIR (or $GPU_CHECK_WHEELS; default: .whl/ when it exists) holds the packages the machine lacks, installed
# with `pip install --no-index --no-deps --target $GPU_CHECK_SITE` (default /tmp/gpu_check_site) and put on
# PYTHONPATH with the checkout (no `pip install -e .` needed). The lent H200 machine has Python 3.12, a CUDA torch,
# transformers, peft, accelerate, tokenizers, safetensors, numpy, pyyaml, psutil, ... but not these, which the
# steps import (versions from requirements/lock-cpu.txt; 18 MiB of wheels in all):
#   deepspeed==0.19.8              sdist only on PyPI: build a wheel once, DS_BUILD_OPS=0 (pure Python, ops JIT)
#   hjson==3.1.0                   deepspeed's
#   pydantic==2.14.3 pydantic_core==2.50.4 (cp312 manylinux) annotated-types==0.8.0 typing-inspection==0.4.5
#   typing_extensions==4.16.0      deepspeed's config; typing_extensions only in case the image's is older
#   hydra-core==1.3.8 omegaconf==2.3.1
#   antlr4-python3-runtime==4.9.3  sdist only on PyPI: build a wheel once (pure Python)
#   transformers==5.19.0 peft==0.21.2   the suite's versions (the machine has transformers 5.17)
# and, for the QLoRA steps (else they SKIP): bitsandbytes==0.50.2 (41 MiB, manylinux_2_24; has CUDA 13 kernels; its
# own needs, torch, numpy and packaging, are there). All of it with the checkout: about 62 MiB of the 64 a call carries.
# Not needed by these steps (import lazily elsewhere): math-verify (task=math), wordfreq/english-words (acronym),
# vllm, wandb (logger=none here), datasets, openai/httpx2 (teachers), submitit. An sdist in WHEELS_DIR is built there
# with --no-build-isolation (needs setuptools and, for deepspeed, torch: both on the machine).
# Fetch them on a machine with pip (x86-64 Linux wheels for CPython 3.12):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl hydra-core==1.3.8 omegaconf==2.3.1 hjson==3.1.0 pydantic==2.14.3 \
#     pydantic_core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0 \
#     transformers==5.19.0 peft==0.21.2 bitsandbytes==0.50.2
#   DS_BUILD_OPS=0 .venv/bin/python -m pip wheel --no-deps --no-build-isolation -w .whl deepspeed==0.19.8 \
#     antlr4-python3-runtime==4.9.3   (a python with torch: deepspeed's setup.py imports it)
set -u
cd "$(dirname "$0")/.." || exit 2
REPO=$PWD

WHEELS=${GPU_CHECK_WHEELS:-}
if [[ $# -gt 0 && $1 != -* ]]; then
  WHEELS=$1
  shift
fi
[[ -z $WHEELS && -d .whl ]] && WHEELS=.whl
# the checkout's venv when there is one (a GPU box set up with `pip install -e '.[gpu,dev]'`), else the machine's python
if [[ -n ${GPU_CHECK_PYTHON:-} ]]; then PY=$GPU_CHECK_PYTHON
elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python
else PY=python3
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

for arg in "$@"; do
  if [[ $arg == --dry-run ]]; then
    exec "$PY" scripts/gpu_check.py "$@"
  fi
done

# 1. CUDA? (only torch is needed to tell; nothing is installed on a machine without it)
allow_cpu=0
for arg in "$@"; do [[ $arg == --allow-cpu ]] && allow_cpu=1; done
if ! timeout 120 "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null \
   && [[ $allow_cpu == 0 ]]; then
  echo "no CUDA device: nothing to check"
  exit 0
fi

OUT_DIR=${OUT:-gpu_check_out}
mkdir -p "$OUT_DIR"
SETUP_LOG="$OUT_DIR/gpu_check_setup.log"
: >"$SETUP_LOG"

# 2. the missing packages, from the carried wheels (and sdists), into a folder of their own on PYTHONPATH
if [[ -n $WHEELS ]]; then
  SITE=${GPU_CHECK_SITE:-/tmp/gpu_check_site}
  shopt -s nullglob
  files=("$WHEELS"/*.whl "$WHEELS"/*.tar.gz "$WHEELS"/*.zip)
  shopt -u nullglob
  if [[ ${#files[@]} -eq 0 ]]; then
    echo "setup: no wheels in $WHEELS" | tee -a "$SETUP_LOG"
  else
    echo "setup: installing ${#files[@]} packages from $WHEELS into $SITE" | tee -a "$SETUP_LOG"
    DS_BUILD_OPS=0 timeout 180 "$PY" -m pip install --disable-pip-version-check -q --no-index --no-deps \
      --no-build-isolation --no-compile --no-cache-dir --upgrade --target "$SITE" "${files[@]}" >>"$SETUP_LOG" 2>&1
    rc=$?
    if [[ $rc -ne 0 ]]; then
      echo "setup: pip install failed (status $rc); the import check below names what is missing:" | tee -a "$SETUP_LOG"
      tail -n 20 "$SETUP_LOG"
    fi
    export PYTHONPATH="$REPO:$SITE${PYTHONPATH#"$REPO"}"
  fi
else
  echo "setup: no wheels folder (argument, GPU_CHECK_WHEELS or .whl/): using the packages already installed" \
    | tee -a "$SETUP_LOG"
fi

# 3. the steps, each with its own timeout inside (and none past --budget-s); this timeout only guards the whole
budget=400
prev=
for arg in "$@"; do
  [[ $prev == --budget-s ]] && budget=${arg%.*}
  [[ $arg == --budget-s=* ]] && budget=${arg#--budget-s=} && budget=${budget%.*}
  prev=$arg
done
guard=$((budget + 60))
export DS_BUILD_OPS=0 PYTHONUNBUFFERED=1
timeout --kill-after=20 "$guard" "$PY" scripts/gpu_check.py --out "$OUT_DIR" --setup-log "$SETUP_LOG" "$@"
rc=$?
[[ $rc -eq 124 || $rc -eq 137 ]] && echo "gpu_check.py ran past the script's ${guard} s limit (--budget-s + 60)"
exit $rc
