#!/bin/bash
# Our training step against the public PyTorch reproduction's, on this machine in the same run,
# alternately (ours, theirs, ours, theirs), each on its own configuration of the same protocol:
# batch 16, 32x32, the encoder reads 5 frames, 29 leapfrog steps, 30 frames decoded and scored,
# GECO and Adam (bench/bench_pytorch_reproduction.py says what the two models differ in).
#
#     TORCH_PYTHON=/tmp/torchvenv/bin/python bench/vs_pytorch.sh REPRO_CLONE [ROUNDS] [STEPS]
#
# TORCH_PYTHON: a Python with PyTorch (see bench_pytorch_reproduction.py); REPRO_CLONE: a clone of
# github.com/CampusAI/Hamiltonian-Generative-Networks.
set -euo pipefail
repo=${1:?usage: TORCH_PYTHON=... bench/vs_pytorch.sh REPRO_CLONE [ROUNDS] [STEPS]}
rounds=${2:-2}; steps=${3:-6}
here=$(cd "$(dirname "$0")/.." && pwd)
ours=${PYTHON:-$here/.venv/bin/python}
theirs=${TORCH_PYTHON:?set TORCH_PYTHON to a Python that has torch}
export TF_CPP_MIN_LOG_LEVEL=2
flops=--flops
for r in $(seq 1 "$rounds"); do
    echo "== round $r: hgn_tf (paper preset, the encoder reading 5 frames)"
    "$ours" "$here/bench/bench_train_step.py" --preset paper --input-frames 5 --steps "$steps" \
        $flops 2>&1 | grep -E "^(preset|GFLOP|step time)"
    echo "== round $r: the PyTorch reproduction (its default configuration)"
    "$theirs" "$here/bench/bench_pytorch_reproduction.py" --repo "$repo" --steps "$steps" \
        $flops 2>&1 | grep -E "^(PyTorch|GFLOP|step time)"
    flops=
done
