"""Hyperparameter search over GECO settings with keras-tuner (`hgn tune`).

    hgn_tf.tuning.space        the search space as data (`SEARCH_SPACE`, `search_space_table`)
    hgn_tf.tuning.hypermodel   that space in keras-tuner (`GecoHyperModel`, `config_from_hp`),
                               the objective (`score`, `KLBound`, `failure_reason`)
    hgn_tf.tuning.search       `run_search` (random / Bayesian / Hyperband, resumable,
                               distributed), the report, `evaluate_config` for baselines
    hgn_tf.tuning.cli          the `hgn tune` sub-command

Names are imported lazily, so that `hgn --help` does not load TensorFlow.
"""

import importlib

__all__ = [
    "ALGORITHMS",
    "OBJECTIVE",
    "SEARCH_SPACE",
    "GecoHyperModel",
    "KLBound",
    "SearchResults",
    "TrialResult",
    "config_from_hp",
    "evaluate_config",
    "failure_reason",
    "run_search",
    "score",
    "search_space_table",
]

_MODULES = {
    "GecoHyperModel": "hypermodel", "KLBound": "hypermodel", "config_from_hp": "hypermodel",
    "score": "hypermodel", "failure_reason": "hypermodel", "OBJECTIVE": "hypermodel",
    "run_search": "search", "evaluate_config": "search", "SearchResults": "search",
    "TrialResult": "search", "ALGORITHMS": "search", "SEARCH_SPACE": "space",
    "search_space_table": "space",
}


def __getattr__(name):
    if name in _MODULES:
        return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
