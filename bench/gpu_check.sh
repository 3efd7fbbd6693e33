#!/usr/bin/env bash
# The device check for one lent GPU, as one command writing one JSON (bench/gpu_check.py says what
# it measures): bench/results/gpu_check.json, and a copy in $OUT when the device runner sets it.
#   bash bench/gpu_check.sh                    PYTHON=... chooses the interpreter
#   GPU_CHECK_TOY=1 bash bench/gpu_check.sh    a rehearsal on a CPU at toy scale (bench/out/gpu_check_toy.json)
# The side-by-side with the official SCN loop needs official-scn/: python -m bench.official_loop prepare
set -uo pipefail
cd "$(dirname "$0")/.."
args=()
if [ -n "${GPU_CHECK_TOY:-}" ]; then
    args+=(--toy)
fi
if [ -n "${RESULT:-}" ]; then
    args+=(--json "$RESULT")
fi
exec "${PYTHON:-python}" -m bench.gpu_check "${args[@]}" "$@"
