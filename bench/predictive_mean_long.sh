#!/bin/bash
# The predictive-mean lever on the full `cpu` recipe: pendulum, the encoder reading 5 frames,
# 4,500 steps (curriculum 10/15/20/30 frames), K = 4 posterior draws, in mixed_bfloat16 (a CPU
# with AMX: about 0.55 of float32's time, the same learning; README, Results). Compare with the
# `table1` prediction row (K = 1, float32: 0.62x, median VPT 13). About 1.5-2 hours on the 2-core
# CPU; a killed run resumes where it stopped (run it again).
#   bench/predictive_mean_long.sh [OUT]     (default OUT: results/predictive_mean/pendulum_K4_4500_bf16)
set -e
cd "$(dirname "$0")/.."
d=${1:-results/predictive_mean/pendulum_K4_4500_bf16}
hgn=${HGN:-.venv/bin/hgn}
echo "=== $(date -u) start $d"
$hgn train --preset cpu --system pendulum --input-mode inference --input-frames 5 \
  --predictive-draws 4 --precision mixed_bfloat16 --run-dir "$d"
echo "=== $(date -u) trained"
$hgn evaluate --run-dir "$d" --max-sequences 256 --prediction-floor
echo "=== $(date -u) done"
