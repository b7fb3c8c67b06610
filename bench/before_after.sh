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
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$here/.venv/bin/python}
tmp=$(mktemp -d)
trap 'git -C "$here" worktree remove --force "$tmp/ref" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git -C "$here" worktree add -q --detach "$tmp/ref" "$ref"
# The editable install maps hgn_tf to this tree; for REF, a path hook points it at REF's copy.
mkdir -p "$tmp/shim"
cat > "$tmp/shim/sitecustomize.py" <<PY
import os
tree = os.environ.get("HGN_TREE")
if tree:
    try:
        import __editable___hgn_tf_0_1_0_finder as finder
        for key, path in list(finder.MAPPING.items()):
            finder.MAPPING[key] = path.replace("$here", tree)
    except ImportError:
        pass
PY
run() {  # run TREE args...
    local tree=$1; shift
    (cd "$tree" && HGN_TREE=$tree PYTHONPATH=$tree:$tmp/shim "$py" "$here/bench/bench_train_step.py" "$@")
}
echo "== result: REF ($(git -C "$here" rev-parse --short "$ref")) saved, this tree checked"
run "$tmp/ref" --save-result "$tmp/ref.npz" "$@" 2>/dev/null | tail -1
run "$here" --check-result "$tmp/ref.npz" "$@" 2>/dev/null | tail -5
for i in 1 2; do
    echo "== time, round $i: REF"; run "$tmp/ref" "$@" 2>/dev/null | tail -3
    echo "== time, round $i: this tree ($(git -C "$here" rev-parse --short HEAD)$(git -C "$here" diff --quiet || echo '+changes'))"
    run "$here" "$@" 2>/dev/null | tail -3
done
