#!/usr/bin/env bash
# The GPU check, as one script for one lent GPU (about 4–6 minutes):
#   1. generate the built-in benchmark at RAF-DB size (12,271 train / 3,068 test) with every core;
#   2. run the CUDA tests (tests/test_device.py);
#   3. bench/gpu_throughput.py: ceiling, plain PyTorch loop and our trainer (SCN, baseline) at
#      112 and 224 px, batch 64 and 256.
# Writes bench/results/gpu_check.json (and a copy into $OUT when the device runner sets it).
#   bash bench/gpu_check.sh            PYTHON=... to choose the interpreter
# A rehearsal at toy scale on a CPU (what was run before any GPU was lent):
#   SYNTH_TRAIN=60 SYNTH_TEST=20 RESULT=/tmp/check.json \
#   BENCH_ARGS="--device cpu --sizes 32 --batches 8 --steps 2 --workers 0" bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
RESULT=${RESULT:-bench/results/gpu_check.json}
SYNTH_TRAIN=${SYNTH_TRAIN:-12271}
SYNTH_TEST=${SYNTH_TEST:-3068}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

start=$(date +%s)
$PYTHON -m scn synth --out "$WORK/rafdb" --train "$SYNTH_TRAIN" --test "$SYNTH_TEST" --workers "$(nproc)" > "$WORK/synth.txt" 2>&1
synth_rc=$?
synth_s=$(( $(date +%s) - start ))

start=$(date +%s)
timeout 100 $PYTHON -m pytest tests/test_device.py -q -p no:cacheprovider -o addopts="" > "$WORK/tests.txt" 2>&1
tests_rc=$?
tests_s=$(( $(date +%s) - start ))

$PYTHON - "$WORK" "$synth_rc" "$synth_s" "$tests_rc" "$tests_s" "$SYNTH_TRAIN" "$SYNTH_TEST" > "$WORK/extra.json" <<'PY'
import json, sys
work, synth_rc, synth_s, tests_rc, tests_s, train, test = sys.argv[1:]
tail = lambda name: open(f"{work}/{name}", errors="replace").read()[-3000:]
print(json.dumps({
    "synth": {"command": f"python -m scn synth --train {train} --test {test} --workers $(nproc)",
              "exit": int(synth_rc), "seconds": int(synth_s), "output_tail": tail("synth.txt")},
    "cuda_tests": {"command": "python -m pytest tests/test_device.py", "exit": int(tests_rc),
                   "seconds": int(tests_s), "output_tail": tail("tests.txt")},
}))
PY
echo "synth exit $synth_rc (${synth_s} s), CUDA tests exit $tests_rc (${tests_s} s)"
tail -3 "$WORK/tests.txt"

if [ "$synth_rc" -eq 0 ]; then
    # shellcheck disable=SC2086  # BENCH_ARGS holds several options
    timeout 240 $PYTHON -m bench.gpu_throughput --data "$WORK/rafdb" --extra "$WORK/extra.json" --json "$RESULT" \
        ${BENCH_ARGS:-}
    bench_rc=$?
else
    cp "$WORK/extra.json" "$RESULT"
    bench_rc=$synth_rc
fi
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
    cp "$RESULT" "$OUT/"
fi
echo "bench exit $bench_rc; report: $RESULT"
exit $(( tests_rc != 0 || bench_rc != 0 ))
