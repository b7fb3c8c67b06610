"""How physical are an HGN's samples: the standard prior N(0, I) against learned priors (issue 9).

For each trained run: encode the first --fit-sequences training sequences (the aggregate
posterior over the initial state, `hgn_tf.prior.aggregate_posterior`), fit each learned prior
named in --priors to them, draw --n samples of --frames frames from each prior (and from
N(0, I)), read the physics back from the frames (`hgn_tf.plausibility`) and print a Markdown
table beside the ground-truth floor (the first --n test sequences: the stored frames, rendered
from noisy states, and the clean states rendered). Nothing is written into the run folders; the
sample pictures (PNG grid, tracks and energy read back) go to --out.

Prior specs: `standard`, `gmm:K:full` / `gmm:K:diag` (K components; optional fields
`reg=R` for reg_covar, default 1e-3, and `pca=R` for EM in R principal directions:
`gmm:32:full:pca=16`), `flow:L` (RealNVP, L
couplings). Target (issue 9): every body found in >= 95% of sample frames, and the samples'
median energy relative variance within 3x the stored frames' (the noisy floor).

    python bench/sample_physics.py --runs runs/table1/autoencode/pendulum/leapfrog \
        --priors standard gmm:16:full gmm:16:diag flow:4
"""

import argparse
import dataclasses
import pathlib
import time

import numpy as np
import tensorflow as tf

from hgn_tf import data as data_lib
from hgn_tf import physics as physics_lib
from hgn_tf import plausibility, plots
from hgn_tf.prior import PriorConfig, aggregate_posterior, fit_prior
from hgn_tf.train import load_run


def prior_config(spec: str, seed: int, flow_steps: int) -> PriorConfig | None:
    parts = spec.split(":")
    if parts == ["standard"]:
        return None
    if parts[0] == "gmm" and len(parts) >= 3:
        extra = {}
        for field in parts[3:]:
            key, _, value = field.partition("=")
            if key not in ("reg", "pca") or not value:
                raise SystemExit(f"--priors: unknown field {field!r} in {spec!r} "
                                 "(reg=R, pca=R)")
            extra["reg_covar" if key == "reg" else "pca_dim"] = (
                float(value) if key == "reg" else int(value))
        return PriorConfig(kind="gmm", components=int(parts[1]), covariance=parts[2], seed=seed,
                           **extra)
    if parts[0] == "flow" and len(parts) == 2:
        return PriorConfig(kind="flow", coupling_layers=int(parts[1]), steps=flow_steps,
                           seed=seed)
    raise SystemExit(f"--priors: unknown spec {spec!r} "
                     "(standard, gmm:K:full|diag[:reg=R][:pca=R], flow:L)")


def batches(cfg, split, limit):
    ds = data_lib.load(cfg.data, split).take(limit).batch(64)
    return ds.map(lambda ex: ex["frames"]).prefetch(2)


def samples(model, prior, n, frames, seed, batch=16):
    out = [model.sample(min(batch, n - i), frames, seed=tf.constant([seed, i]),
                        prior=prior)["frames"].numpy() for i in range(0, n, batch)]
    return np.concatenate(out)


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def row(run, prior, fit_s, logp, r, floor):
    found, var = r["found_fraction"], r["energy_rel_var_median"]
    ok = found >= 0.95 and var is not None and var <= 3 * floor
    return (f"| {run} | {prior} | {fit_s} | {logp} | {found:.3f} | {fmt(var, '.3g')} | "
            f"{fmt(r['energy_rel_drift_median'], '.3f')} | "
            f"{fmt(r.get('constraint_residual'), '.4f')} | {r['plausible_fraction']:.3f} | "
            f"{'yes' if ok else 'no'} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", nargs="+", required=True, help="finished training runs")
    ap.add_argument("--priors", nargs="+", default=["standard", "gmm:16:full", "gmm:16:diag",
                                                    "flow:4"])
    ap.add_argument("--fit-sequences", type=int, default=4096)
    ap.add_argument("--n", type=int, default=64, help="samples (and floor sequences)")
    ap.add_argument("--frames", type=int, default=30, help="frames per sample")
    ap.add_argument("--flow-steps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench_sample_physics", help="pictures")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    print("| run | prior | fit (s) | held-out log p / dim | found | E rel. var. (median) | "
          "E rel. drift (median) | rod residual | plausible | target met |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for run in args.runs:
        run = pathlib.Path(run)
        name = "/".join(run.parts[-3:-1])
        cfg, model = load_run(run)
        system = physics_lib.get(cfg.data.system)
        frame_dt = float(data_lib.build(cfg.data).builder_config.dt)
        floor_cfg = dataclasses.replace(cfg.data, n_frames=args.frames)
        test = data_lib.load_arrays(floor_cfg, "test", keys=("frames", "q"), limit=args.n)
        truth = plausibility.physics_report(test["frames"], system, frame_dt)
        clean = plausibility.physics_report(
            physics_lib.render_states(system, test["q"], cfg.data.resolution), system, frame_dt)
        floor = truth["energy_rel_var_median"]
        print(row(name, "ground truth: stored frames (floor)", "-", "-", truth, floor))
        print(row(name, "ground truth: clean states rendered", "-", "-", clean, floor),
              flush=True)

        start = time.time()
        states = aggregate_posterior(model, batches(cfg, "train", args.fit_sequences),
                                     seed=args.seed)
        held = aggregate_posterior(model, batches(cfg, "validation", 512), seed=args.seed + 1)
        encode_s = time.time() - start
        print(f"<!-- {name}: {len(states)} training states of dim {states.shape[1]} encoded, "
              f"{len(held)} held out, {encode_s:.0f} s -->", flush=True)
        for spec in args.priors:
            config = prior_config(spec, args.seed, args.flow_steps)
            prior, fit_s, logp = None, "-", "-"
            if config is not None:
                start = time.time()
                prior = fit_prior(states, config)
                fit_s = f"{time.time() - start:.0f}"
                logp = f"{float(tf.reduce_mean(prior.log_prob(held))) / states.shape[1]:.3f}"
            frames = samples(model, prior, args.n, args.frames, args.seed + 7)
            r = plausibility.physics_report(frames, system, frame_dt)
            print(row(name, spec, fit_s, logp, r, floor), flush=True)
            stem = f"{name.replace('/', '_')}_{spec.replace(':', '-')}"
            plots.grid_png(frames[:8], out / f"{stem}_samples.png")
            plausibility.write_pictures(frames[:4], system, frame_dt, out, stem,
                                        reference_frames=test["frames"][:4])


if __name__ == "__main__":
    main()
