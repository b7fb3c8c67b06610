"""Learning benchmark: train the `small` CPU preset on one system, evaluate, print the figures.

    python bench/bench_learning.py --system mass_spring [--steps N] [--out runs/bench_learning]

Prints the wall-clock training time, the test pixel MSE (x1e4) beside the two baselines
(mean training frame; repeating the last frame the encoder read) and their ratio, the learned
Hamiltonian's variance along rollouts and the valid prediction time. The issue's bar: after at
most 15 minutes of CPU training, test MSE <= 0.5 x the repeat-last baseline.
"""

import argparse
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from hgn_tf import config as C  # noqa: E402
from hgn_tf.evaluate import evaluate  # noqa: E402
from hgn_tf.train import train  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--system", default="pendulum")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--out", default="runs/bench_learning")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    cfg = C.small(args.system).replace(
        data=dict(data_dir=args.data_dir or str(out / "data")),
        train=dict(steps=args.steps) if args.steps else {})
    run = out / args.system
    t0 = time.perf_counter()
    train(cfg, run, verbose=2)
    minutes = (time.perf_counter() - t0) / 60
    m = evaluate(run, max_sequences=256, verbose=False)["test"]
    ratio = m["pixel_mse"] / m["baseline_repeat_last_mse"]
    print(f"system={args.system} steps={cfg.train.steps} train+data wall time {minutes:.1f} min")
    print(f"test pixel MSE x1e4: model {m['pixel_mse'] * 1e4:.2f} +- {m['pixel_mse_std'] * 1e4:.2f}"
          f" | mean frame {m['baseline_mean_frame_mse'] * 1e4:.2f}"
          f" | repeat last {m['baseline_repeat_last_mse'] * 1e4:.2f}"
          f" | model / repeat-last {ratio:.2f}")
    print(f"Hamiltonian variance x1e4 {m['hamiltonian_variance'] * 1e4:.4f}, "
          f"VPT {m['vpt']:.1f} of {cfg.data.n_frames} frames")


if __name__ == "__main__":
    main()
