"""The import graph: every module imports only from its own layer or the layers below it."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Where each folder is installed (setup.cfg's package_dir).
PACKAGES = {"hgn_tf": "hgn_tf", "datasets": "hgn_tf.datasets", "tuning": "hgn_tf.tuning",
            "export": "hgn_tf.export"}
# Lowest first. A module's layer is that of the longest prefix listed here.
LAYERS = [
    ("hgn_tf.errors", "hgn_tf.files", "hgn_tf.hardware", "hgn_tf.export.limits",
     "hgn_tf.tuning.space"),
    ("hgn_tf.physics", "hgn_tf.baselines.tasks"),
    ("hgn_tf.integrators", "hgn_tf.geco", "hgn_tf.metrics", "hgn_tf.plausibility", "hgn_tf.plots"),
    ("hgn_tf.config",),
    ("hgn_tf.networks", "hgn_tf.data", "hgn_tf.datasets"),
    ("hgn_tf.model", "hgn_tf.flows", "hgn_tf.baselines"),
    ("hgn_tf.train", "hgn_tf.prior"),
    ("hgn_tf.evaluate", "hgn_tf.tuning", "hgn_tf.export"),
    # Runners that score with hgn_tf.evaluate and print the published numbers beside ours.
    ("hgn_tf.experiments", "hgn_tf.demo", "hgn_tf.cli", "hgn_tf.baselines.hnn_conv_run"),
]


def _layer(module: str) -> int | None:
    if module == "hgn_tf":  # the package itself (an empty __init__)
        return 0
    best = None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                    best is None or len(prefix) > best[1]):
                best = (i, len(prefix))
    return None if best is None else best[0]


def _modules():
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name.endswith("_test.py"):
                continue
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield ".".join([package, *parts]), path


def _imports(path: pathlib.Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_no_module_imports_one_above_it():
    seen, upward = 0, []
    for module, path in _modules():
        own = _layer(module)
        assert own is not None, f"{module} has no layer: add it to LAYERS"
        for name in _imports(path):
            target = _layer(name)
            if name.startswith("hgn_tf") and target is not None and target > own:
                upward.append(f"{module} (layer {own}) imports {name} (layer {target})")
            seen += 1
    assert seen > 100 and not upward, upward


def test_the_server_and_client_import_no_training_code():
    for module in ("server", "client", "limits"):
        names = set(_imports(ROOT / "export" / f"{module}.py"))
        hgn = {n for n in names if n.startswith("hgn_tf.")}
        allowed = ("hgn_tf.errors", "hgn_tf.export.limits", "hgn_tf.plots")
        assert all(n.startswith(allowed) for n in hgn), (module, hgn)
