#!/bin/bash
# Serving before and after a change: the paper preset exported from REF and from this tree (the
# same untrained weights: build_model's seeds), both SavedModels called alternately in one
# process (bench/serving_ab.py).
#
#     bench/serving_before_after.sh REF [serving_ab.py options...]    e.g. REF = main~3
set -euo pipefail
ref=${1:?usage: bench/serving_before_after.sh REF [options]}; shift
source "$(dirname "$0")/ref_tree.sh" "$ref"
export_paper() {  # export_paper TREE OUT
    in_tree "$1" "$py" - "$2" <<'PY'
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from hgn_tf import config
from hgn_tf.train import build_model
from export.saved_model import export_saved_model
print(export_saved_model(build_model(config.preset("paper")), sys.argv[1], max_steps=100,
                         max_batch=64, xla_max_batch=16))
PY
}
export_paper "$tmp/ref" "$tmp/before" 2>/dev/null | tail -1
export_paper "$here" "$tmp/after" 2>/dev/null | tail -1
label="$(git -C "$here" rev-parse --short "$ref"),$(git -C "$here" rev-parse --short HEAD)$(git -C "$here" diff --quiet || echo '+changes')"
"$py" "$here/bench/serving_ab.py" "$tmp/before/1" "$tmp/after/1" --labels "$label" "$@" 2>/dev/null
