# Sourced by the before/after benchmarks: REF checked out into a temporary git worktree, and
# `in_tree TREE CMD...`, which runs CMD with `import hgn_tf` resolving to TREE's copy.
#
#     source "$(dirname "$0")/ref_tree.sh" REF     # sets here, py, tmp; REF is at $tmp/ref
#
# The worktree and $tmp are removed on exit.
ref=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
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
in_tree() {  # in_tree TREE CMD...: CMD in TREE, its hgn_tf (and export, bench) TREE's
    local tree=$1; shift
    (cd "$tree" && HGN_TREE=$tree PYTHONPATH=$tree:$tmp/shim "$@")
}
