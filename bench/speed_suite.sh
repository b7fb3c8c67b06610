#!/bin/bash
# The speed figures of bench/README.md in one go, on a quiet machine (nothing else running):
# the training step before/after REF with the proof that the result is unchanged, the per-part
# profile, the bfloat16 step, and serving.      bench/speed_suite.sh REF
set -uo pipefail
ref=${1:?usage: bench/speed_suite.sh REF}
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
quiet() { grep -v -E "^(W0000|I0000|E0000|WARNING)|Instructions for updating|deprecated|migrate" ; }
echo "### $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "### training step, paper preset: before ($ref) / after ($(git rev-parse --short HEAD))"
bench/before_after.sh "$ref" --preset paper --steps 6 2>&1 | quiet
echo "### training step, paper preset, mixed_bfloat16"
$py bench/bench_train_step.py --preset paper --steps 6 --precision mixed_bfloat16 2>&1 | quiet | tail -3
echo "### profile, paper preset (float32, then mixed_bfloat16)"
$py bench/profile_train_step.py --preset paper --repeats 3 2>&1 | quiet | tail -7
$py bench/profile_train_step.py --preset paper --repeats 3 --precision mixed_bfloat16 2>&1 | quiet | tail -7
echo "### serving, paper preset"
$py bench/bench_serving.py --preset paper 2>&1 | quiet | tail -6
