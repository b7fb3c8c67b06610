"""Learning benchmark: train the `small` CPU preset on one system, evaluate, print the figures.

    python bench/bench_learning.py --system mass_spring [--steps N] [--out runs/bench_learning]

Prints the wall-clock training time and `hgn evaluate`'s table over a 30-frame unroll: the test
pixel MSE (x1e4) on the frames the encoder read and on the frames after them, beside the two
baselines (mean training frame; repeating the last frame the encoder read), the learned
Hamiltonian's variance along rollouts and the valid prediction time. For the CPU scale of the
experiments, see `hgn experiment table1`.
"""

import argparse
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from hgn_tf import config as C  # noqa: E402
from hgn_tf.evaluate import evaluate, format_table  # noqa: E402
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
    metrics = evaluate(run, max_sequences=256, verbose=False)
    m = metrics["test"]
    print(f"system={args.system} steps={cfg.train.steps} train+data wall time {minutes:.1f} min")
    print(format_table(metrics))
    print(f"test pixel MSE / mean frame: all {m['ratio_to_mean_frame']:.2f}, frames read "
          f"{m['read']['ratio_to_mean_frame']:.2f}"
          + (f", frames after {m['after']['ratio_to_mean_frame']:.2f}" if "after" in m else "")
          + f"; median VPT {m['vpt_median']:.0f} of {metrics['horizon']}")


if __name__ == "__main__":
    main()
