"""Two SavedModels' `rollout` signatures, loaded in one process and called alternately.

    python bench/serving_ab.py BEFORE_DIR AFTER_DIR [--rounds 8] [--batch 64] [--steps 30]

What `serving_before_after.sh` runs on the exports of two trees: one process, so both see the
same machine state (on this project's 2-core machine the convolution rate moves by 1.5x within
half an hour, more than most changes). Each round calls BEFORE then AFTER: five batch-1 rollouts
and one batch-`--batch` rollout each, frames fetched to numpy. Prints the largest difference
between the two frames, each round's throughput and the medians.
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--labels", default="before,after")
    args = ap.parse_args()
    labels = args.labels.split(",")
    fns = {label: tf.saved_model.load(path).signatures["rollout"]
           for label, path in zip(labels, (args.before, args.after))}
    with open(os.path.join(args.before, "assets", "hgn_export.json")) as f:
        info = json.load(f)
    k, r = info["conditioning_frames"], info["resolution"]
    rng = np.random.default_rng(0)
    many = tf.constant(rng.integers(0, 256, (args.batch, k, r, r, 3), np.uint8))
    one = many[:1]
    n, dt = tf.constant(args.steps), tf.constant(0.125)

    def call(f, x):
        return f(frames=x, n_steps=n, dt=dt)["frames"].numpy()

    a, b = (call(f, many) for f in fns.values())
    print(f"frames max |{labels[0]} - {labels[1]}| at batch {args.batch}: "
          f"{np.abs(a - b).max():.2e}")
    for f in fns.values():
        for _ in range(3):
            call(f, one)
    t1 = {label: [] for label in fns}
    tb = {label: [] for label in fns}
    for r in range(args.rounds):
        for label, f in fns.items():
            for _ in range(5):
                start = time.perf_counter()
                call(f, one)
                t1[label].append(time.perf_counter() - start)
            start = time.perf_counter()
            call(f, many)
            tb[label].append(time.perf_counter() - start)
        print(f"round {r}: " + "  ".join(f"{label} {args.batch / tb[label][-1]:.1f} seq/s"
                                         for label in fns), flush=True)
    for label in fns:
        print(f"{label:12s} batch 1 median {1e3 * statistics.median(t1[label]):.1f} ms "
              f"(of {len(t1[label])}), batch {args.batch} median "
              f"{args.batch / statistics.median(tb[label]):.1f} seq/s (of {len(tb[label])})")


if __name__ == "__main__":
    main()
