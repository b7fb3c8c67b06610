#!/bin/bash
# Training-step time before and after a change, on the same machine in the same run, and the
# proof that the change keeps the result (loss and gradients on a fixed batch).
#
#     bench/before_after.sh REF [bench_train_step.py options...]    e.g. REF = main~3
#
# REF is checked out into a temporary git worktree; the two versions are timed alternately
# (REF, this tree, REF, this tree) so that a change in the machine's load hits both.
set -euo pipefail
ref=${1:?usage: bench/before_after.sh REF [options]}; shift
source "$(dirname "$0")/ref_tree.sh" "$ref"
run() {  # run TREE args...: bench_train_step.py in TREE
    local tree=$1; shift
    in_tree "$tree" "$py" "$here/bench/bench_train_step.py" "$@"
}
echo "== result: REF ($(git -C "$here" rev-parse --short "$ref")) saved, this tree checked"
run "$tmp/ref" --save-result "$tmp/ref.npz" "$@" 2>/dev/null | tail -1
run "$here" --check-result "$tmp/ref.npz" "$@" 2>/dev/null | tail -5
for i in 1 2; do
    echo "== time, round $i: REF"; run "$tmp/ref" "$@" 2>/dev/null | tail -3
    echo "== time, round $i: this tree ($(git -C "$here" rev-parse --short HEAD)$(git -C "$here" diff --quiet || echo '+changes'))"
    run "$here" "$@" 2>/dev/null | tail -3
done
