"""SavedModel export and a TensorFlow-Serving-style REST endpoint for trained HGNs.

    saved_model   `export_saved_model(run_dir, out_dir)`: TF Serving's layout, six signatures
    server        `start_server(model_dir)` / `serve(...)`: the REST predict API (werkzeug); loads
                  the artifact only, never imports hgn_tf's model or training code
    client        `predict(url, signature, inputs)`, `rollout_to_gif(url, frames.npy, out.gif)`
    cli           the `hgn export`, `hgn serve`, `hgn rollout` sub-commands

The names below are imported on first use, so `import hgn_tf.export.client` stays free of
TensorFlow.
"""

from __future__ import annotations

import importlib

__all__ = ["export_saved_model", "predict", "rollout_to_gif", "serve", "start_server"]

_HOMES = {"export_saved_model": "saved_model", "start_server": "server", "serve": "server",
          "predict": "client", "rollout_to_gif": "client"}


def __getattr__(name):
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
