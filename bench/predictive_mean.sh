#!/bin/bash
# The predictive-mean lever (`--predictive-draws K`) on pendulum prediction, the encoder reading
# 5 frames: two runs of 2,400 steps of the `cpu` recipe, K = 4 and its twin K = 1 (the same
# seed, data and order), each evaluated on 256 test sequences beside the prediction floor.
# About 73 + 27 minutes on the 2-core CPU of 2026-12-07. A killed run resumes where it stopped.
#   bench/predictive_mean.sh [OUT]        (default OUT: results/predictive_mean)
set -e
cd "$(dirname "$0")/.."
out=${1:-results/predictive_mean}
hgn=${HGN:-.venv/bin/hgn}
for k in 4 1; do
  d=$out/pendulum_K$k
  echo "=== $(date -u) start K=$k"
  $hgn train --preset cpu --system pendulum --input-mode inference --input-frames 5 \
    --steps 2400 --predictive-draws $k --run-dir $d
  echo "=== $(date -u) trained K=$k"
  $hgn evaluate --run-dir $d --max-sequences 256 --prediction-floor
done
