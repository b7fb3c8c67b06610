#!/usr/bin/env python
"""Acceptance run: a GECO search on pendulum (`small` preset) against the reproduction's defaults.

    python bench/tune_pendulum.py                      # the real run, ~40 min on 2 CPU cores
    python bench/tune_pendulum.py --trials 2 --steps-per-trial 5 --max-examples 64 \
        --out /tmp/tune_smoke                          # an end-to-end check in a few minutes

1. `hgn_tf.tuning.search.run_search` (Bayesian optimisation by default) over the GECO / fixed-beta
   space, every trial `--steps-per-trial` steps of the `small` preset from the same seed.
2. The GECO defaults of the public PyTorch reproduction (alpha 0.99, kappa 0.033, lambda_0 1,
   nu 0.1) trained with the same budget, data, seed and measurement (`evaluate_config`).
3. Prints, for both, the validation reconstruction MSE (per pixel) and the KL (nats per latent
   location), and writes OUT/comparison.md and OUT/comparison.json.

Budget of the default run on 2 shared CPU cores (small preset: ~0.5-0.75 s per step at batch 16,
~15 s of tracing and ~5 s of validation per trial): building the data (4,096 sequences per split)
~1 min; 10 trials x 200 steps ~25-30 min; the defaults, 200 steps, ~3 min. Lower `--trials` or
`--steps-per-trial` on a slower machine. A killed run resumes with the same command (the search
reloads its oracle; the defaults' result is kept in OUT/defaults.json).

Caveat: the best trial is the minimum of `--trials` measurements on one validation set, so its
number is optimistic; `hgn train --config OUT/best_config.json` and `hgn evaluate` give an
unbiased (test split) comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The reproduction's GECO (Balsells Rodas et al., ReScience C 7(2), 2021).
REPRODUCTION_GECO = {"mode": "geco", "kappa": 0.033, "alpha": 0.99, "initial_multiplier": 1.0,
                     "nu": 0.1}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/bench/tune_pendulum")
    p.add_argument("--algorithm", choices=("random", "bayesian", "hyperband"), default="bayesian")
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--steps-per-trial", type=int, default=200)
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--max-examples", type=int, default=None,
                   help="sequences per split (default: the small preset's 4,096)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=1, help="the oracle's seed")
    return p.parse_args(argv)


def _row(name, m):
    if m.get("status", "COMPLETED") != "COMPLETED":
        return f"| {name} | FAILED | | | | {m.get('note', '')} |"
    return (f"| {name} | {m['val_recon']:.4g} | {m['val_kl']:.4g} | {m['val_score']:.4g} | "
            f"{m['multiplier']:.4g} | |")


def main(argv=None) -> int:
    args = parse_args(argv)
    from hgn_tf.tuning.search import evaluate_config, run_search

    from hgn_tf import config as C

    out = pathlib.Path(args.out)
    data_changes = {}
    if args.max_examples is not None:
        data_changes["max_examples"] = args.max_examples
    if args.data_dir is not None:
        data_changes["data_dir"] = args.data_dir
    base = C.small("pendulum").replace(data=data_changes)

    t0 = time.time()
    results = run_search(base, out, algorithm=args.algorithm, max_trials=args.trials,
                         steps_per_trial=args.steps_per_trial,
                         steps_per_epoch=args.steps_per_epoch, seed=args.seed, verbose=2)
    t_search = time.time() - t0

    defaults_cfg = base.replace(geco=REPRODUCTION_GECO)
    defaults_path = out / "defaults.json"
    budget = {"steps_per_trial": args.steps_per_trial, "steps_per_epoch": args.steps_per_epoch,
              "config": json.loads(defaults_cfg.to_json())}
    saved = json.loads(defaults_path.read_text()) if defaults_path.exists() else {}
    t1 = time.time()
    if saved.get("budget") == budget:
        defaults = saved["metrics"]
    else:
        defaults = evaluate_config(defaults_cfg, steps_per_trial=args.steps_per_trial,
                                   steps_per_epoch=args.steps_per_epoch, verbose=2)
        defaults_path.write_text(json.dumps({"budget": budget, "metrics": defaults}, indent=2))
    t_defaults = time.time() - t1

    best = results.best
    best_metrics = None
    if best is not None:
        best_metrics = {"status": "COMPLETED", "val_recon": best.val_recon, "val_kl": best.val_kl,
                        "val_score": best.score, "multiplier": best.multiplier}
        chosen = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in best.values.items() if v is not None)
    lines = [
        "# GECO search vs the reproduction's defaults: pendulum, `small` preset",
        "",
        (f"{args.algorithm}, {len(results.trials)} trials ({len(results.completed)} completed, "
         f"{len(results.failed)} failed) of {args.steps_per_trial} steps; the defaults trained "
         f"with the same budget, data and seed. Search {t_search / 60:.1f} min, defaults "
         f"{t_defaults / 60:.1f} min."),
        "",
        "| config | val recon (MSE/pixel) | val KL (nats/location) | score | multiplier | note |",
        "|---|---|---|---|---|---|",
        _row(f"search best (trial {best.trial_id}: {chosen})", best_metrics) if best
        else "| search best | no trial completed | | | | |",
        _row("reproduction defaults (alpha 0.99, kappa 0.033, lambda0 1, nu 0.1)", defaults),
    ]
    text = "\n".join(lines) + "\n"
    (out / "comparison.md").write_text(text)
    (out / "comparison.json").write_text(json.dumps(
        {"search_best": best_metrics, "best_trial": best.trial_id if best else None,
         "best_values": best.values if best else None, "defaults": defaults,
         "minutes": {"search": t_search / 60, "defaults": t_defaults / 60}}, indent=2))
    print()
    print(text)
    print(f"wrote {out / 'comparison.md'}, {out / 'results.md'}, {out / 'best_config.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
