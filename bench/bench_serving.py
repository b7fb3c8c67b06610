"""Rollout speed: the exported SavedModel against the Keras model called eagerly.

    python bench/bench_serving.py [--preset paper|small] [--steps 30] [--batch 256]

Measures, for one model with UNTRAINED weights (the speed does not depend on them):
  * latency: one rollout of batch 1 and `--steps` frames; the median of `--repeats` calls after
    `--warmup` calls;
  * throughput: sequences per second of rollouts of batch `--batch` (median of
    `--throughput-repeats` calls after one warm-up call);
for the SavedModel's `rollout` signature (one graph, the step loop a tf.while_loop) and for
`model.rollout` called eagerly (no tf.function: every op and every integrator step dispatched
from Python), and the ratios. Both give the same frames (checked). The model call alone is
timed: no HTTP or JSON (the server adds those on top of the SavedModel's figures).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time


def _timed(fn, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=("paper", "small"), default="paper")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=256, help="sequences per batched call")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--throughput-repeats", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import numpy as np
    import tensorflow as tf
    from hgn_tf.export.limits import DEFAULT_MAX_BATCH, DEFAULT_MAX_STEPS
    from hgn_tf.export.saved_model import export_saved_model

    from hgn_tf import config
    from hgn_tf.train import build_model

    cfg = config.preset(args.preset)
    model = build_model(cfg)
    k, r, dt = cfg.conditioning_frames, cfg.data.resolution, cfg.model.dt
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, k, r, r, 3), dtype=np.uint8)
    many = rng.integers(0, 256, (args.batch, k, r, r, 3), dtype=np.uint8)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = export_saved_model(model, tmp, max_steps=max(DEFAULT_MAX_STEPS, args.steps),
                                  max_batch=max(DEFAULT_MAX_BATCH, args.batch))
        export_s = time.perf_counter() - start
        rollout = tf.saved_model.load(str(path)).signatures["rollout"]

        def saved(frames):
            return rollout(frames=tf.constant(frames), n_steps=tf.constant(args.steps, tf.int32),
                           dt=tf.constant(dt, tf.float32))["frames"].numpy()

        def eager(frames):
            return model.rollout(frames, args.steps, dt=dt)["frames"].numpy()

        diff = float(np.abs(saved(one) - eager(one)).max())
        latency = {name: _timed(lambda f=f: f(one), args.repeats, args.warmup)
                   for name, f in (("saved", saved), ("eager", eager))}
        throughput = {name: args.batch / _timed(lambda f=f: f(many), args.throughput_repeats, 1)
                      for name, f in (("saved", saved), ("eager", eager))}

    devices = [d.device_type for d in tf.config.list_physical_devices() if d.device_type != "CPU"]
    where = ", ".join(devices) or f"CPU only ({os.cpu_count()} cores, {platform.machine()})"
    print(f"HGN rollout, preset {args.preset!r} (untrained weights), {args.steps} steps, "
          f"{r}x{r}, {k} conditioning frames; TensorFlow {tf.__version__}, {where}")
    print(f"export: {export_s:.1f} s; SavedModel vs eager frames max |diff| = {diff:.1e}")
    print(f"{'':34s}{'SavedModel':>12s}{'Keras eager':>14s}{'ratio':>9s}")
    print(f"{'latency, batch 1 (ms, median)':34s}{1e3 * latency['saved']:12.1f}"
          f"{1e3 * latency['eager']:14.1f}{latency['eager'] / latency['saved']:8.1f}x")
    print(f"{f'throughput, batch {args.batch} (seq/s)':34s}{throughput['saved']:12.1f}"
          f"{throughput['eager']:14.1f}{throughput['saved'] / throughput['eager']:8.1f}x")
    print("(ratio: how many times faster the SavedModel is)")


if __name__ == "__main__":
    main()
