"""`hgn tune`: parse arguments, call `hgn_tf.tuning.search.run_search`.

    hgn tune --system pendulum --algorithm bayesian --max-trials 10 [--steps-per-trial 200]
             [--preset small|tiny] [--out DIR] [--data-dir D] [--max-examples N]
             [--tune-learning-rate] [--seed S]

Run it again with the same arguments to resume a killed search. For a distributed search run the
same command in each process with KERASTUNER_TUNER_ID / KERASTUNER_ORACLE_IP /
KERASTUNER_ORACLE_PORT set (see `hgn_tf.tuning.search`).
"""

from __future__ import annotations

import sys

__all__ = ["add_commands"]


def _base_config(args):
    from hgn_tf import config as C

    cfg = C.preset(args.preset, args.system)
    changes = {}
    if args.max_examples is not None:
        changes["max_examples"] = args.max_examples
    if args.data_dir is not None:
        changes["data_dir"] = args.data_dir
    return cfg.replace(data=changes)


def cmd_tune(args):
    from hgn_tf.tuning.search import run_search

    out = args.out or f"runs/tune/{args.system}_{args.algorithm}"
    results = run_search(_base_config(args), out, algorithm=args.algorithm,
                         max_trials=args.max_trials, steps_per_trial=args.steps_per_trial,
                         steps_per_epoch=args.steps_per_epoch, seed=args.seed,
                         tune_learning_rate=args.tune_learning_rate,
                         verbose=1 if sys.stdout.isatty() else 2)
    if results is None:
        print("worker done: the chief writes the report")
        return
    print(f"{len(results.completed)} completed, {len(results.failed)} failed: "
          f"{out}/results.md, {out}/results.csv")
    if results.best is None:
        print("no trial completed: no best_config.json")
        return
    best = results.best
    values = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in best.values.items() if v is not None)
    print(f"best: trial {best.trial_id} ({values}): val_recon={best.val_recon:.4g} "
          f"val_kl={best.val_kl:.4g}")
    print(f"train it: hgn train --config {out}/best_config.json --run-dir runs/best")


def add_commands(subparsers) -> None:
    """Add the `tune` sub-command to `hgn`'s sub-parsers."""
    import argparse

    from hgn_tf.tuning.space import search_space_table

    from hgn_tf.config import PRESETS
    from hgn_tf.physics import SYSTEM_NAMES

    p = subparsers.add_parser(
        "tune", help="search GECO settings with keras-tuner (resumable)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="search space:\n" + "\n".join("  " + line
                                              for line in search_space_table().splitlines()))
    p.add_argument("--system", choices=SYSTEM_NAMES, default="pendulum",
                   help="the physical system (default %(default)s)")
    p.add_argument("--algorithm", choices=("random", "bayesian", "hyperband"), default="bayesian",
                   help="keras-tuner's oracle (default %(default)s)")
    p.add_argument("--max-trials", type=int, required=True,
                   help="trials in all (hyperband: a cap on its sweep)")
    p.add_argument("--steps-per-trial", type=int, default=200,
                   help="optimiser steps of a full trial")
    p.add_argument("--steps-per-epoch", type=int, default=None,
                   help="steps between validations (hyperband: its unit of resource)")
    p.add_argument("--preset", choices=tuple(PRESETS), default="small",
                   help="the base config every trial starts from")
    p.add_argument("--out", default=None, help="search folder (default runs/tune/SYSTEM_ALGORITHM)")
    p.add_argument("--data-dir", default=None, help="TFDS data dir")
    p.add_argument("--max-examples", type=int, default=None,
                   help="build only the first N sequences of each split")
    p.add_argument("--tune-learning-rate", action="store_true", help="also search Adam's step")
    p.add_argument("--seed", type=int, default=1, help="the oracle's seed (>= 1)")
    p.set_defaults(func=cmd_tune)
