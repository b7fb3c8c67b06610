"""What a model that reads the first K frames can score at best on the frames after them.

    python bench/prediction_floor.py --systems mass_spring pendulum

For each system's `hamiltonian_systems` dataset (the `cpu` preset's data, 30 frames), prints the
prediction protocol's floors beside the clean-states noise floor, test split, frames K-29:

    posterior mean   the true dynamics' posterior-expected frames given the noisy positions of
                     the K frames read (`hgn_tf.physics.inference`): the lowest expected pixel
                     MSE any predictor that reads those frames can reach
    ML, sharp        the maximum-likelihood initial state's rollout, rendered sharp
    clean states     the stored clean states rendered (`table1`'s noise floor): a model that
                     knew the true state, which K noisy frames do not give

with the pixel MSE, its ratio to the mean-frame baseline, the mean and median valid prediction
time (`hgn_tf.metrics`), and the importance sampler's median effective sample size.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hgn_tf import config as C  # noqa: E402
from hgn_tf.experiments import table1  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--systems", nargs="+", default=["mass_spring", "pendulum"],
                        help="systems to score (those whose initial states have a density)")
    parser.add_argument("--frames-read", type=int, default=table1.PREDICTION_INPUT_FRAMES,
                        help="K, the frames the predictor reads (default: the protocol's 5)")
    parser.add_argument("--samples", type=int, default=table1.PREDICTION_FLOOR_SAMPLES,
                        help="importance samples per sequence")
    parser.add_argument("--sequences", type=int, default=256, help="test sequences scored")
    parser.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    args = parser.parse_args()
    print(f"frames read {args.frames_read}, {args.sequences} sequences, {args.samples} samples, "
          f"seed {args.seed}; test split, scored on frames {args.frames_read}-29")
    print("| system | floor | pixel MSE x1e4 | / mean frame | VPT mean / median |")
    print("| --- | --- | --- | --- | --- |")
    for system in args.systems:
        cfg = C.cpu(system)
        start = time.perf_counter()
        post = table1.prediction_floor(cfg, args.frames_read, args.sequences, args.samples,
                                       args.seed)["test"]
        seconds = time.perf_counter() - start
        clean = table1.noise_floor(cfg, args.frames_read, args.sequences)["test"]
        for name, r in ((f"posterior mean (ESS median "
                         f"{post['ess_median']:.1f} of {args.samples})", post),
                        (f"ML, sharp (chi2 median {post['chi2_median']:.2f})", post["ml"]),
                        ("clean states", clean)):
            w = r["after"]
            print(f"| {system} | {name} | {w['pixel_mse'] * 1e4:.2f} | "
                  f"{w['ratio_to_mean_frame']:.2f}x | {r['vpt']:.1f} / {r['vpt_median']:.1f} |")
        print(f"  ({system}: {seconds:.1f} s for both splits' posterior)", flush=True)


if __name__ == "__main__":
    main()
