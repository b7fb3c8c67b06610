"""Rollout speed of the exported SavedModel, beside the compiled Keras model and the floor.

    python bench/bench_serving.py [--preset paper|small] [--steps 30] [--batch 64]

Measures, for one model with UNTRAINED weights (the speed does not depend on them):
  * latency: one rollout of batch 1 and `--steps` frames; the median of `--repeats` calls after
    `--warmup` calls;
  * throughput: sequences per second of rollouts of batch `--batch` (median of
    `--throughput-repeats` calls after one warm-up call);
for the SavedModel's `rollout` signature (what `hgn serve` runs), for its `rollout_frames`
signature (the same frames without the energy along the path or the states), and for the model's
`rollout` compiled with `tf.function` (what a user who does not export would run; one graph
with the step loop a `tf.while_loop`, returning the frames and the learned energy as `rollout`
does; all with integrator steps compiled by XLA for batches of at most `--xla-max-batch`; 0 turns
XLA off). The SavedModel and `tf.function` give the same frames (checked).
  * the floor: the rollout's FLOPs (TensorFlow's graph profiler; see bench/floor.py) over this
    machine's measured convolution rate, and the fraction of it each figure reaches;
  * the HTTP overhead of `hgn serve` for a batch-1 rollout: the median time of a JSON request
    to a local server (werkzeug, 127.0.0.1) minus the SavedModel call alone.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=("paper", "small"), default="paper")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64, help="sequences per batched call")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--throughput-repeats", type=int, default=3)
    parser.add_argument("--peak", type=float, default=None, help="GFLOP/s (default: measured)")
    parser.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default="float32",
                        help="the model's precision (ModelConfig.precision)")
    parser.add_argument("--xla-max-batch", type=int, default=None,
                        help="XLA-compiled integrator steps up to this batch (default: the "
                             "export's default; 0: never)")
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf
    from floor import conv_peak_gflops, median_time, rollout_gflops
    from hgn_tf.export.client import predict
    from hgn_tf.export.limits import DEFAULT_MAX_BATCH, DEFAULT_MAX_STEPS, DEFAULT_XLA_MAX_BATCH
    from hgn_tf.export.saved_model import export_saved_model
    from hgn_tf.export.server import start_server

    from hgn_tf import config
    from hgn_tf.train import build_model

    cfg = config.preset(args.preset).replace(model=dict(precision=args.precision))
    model = build_model(cfg)
    k, r, dt = cfg.conditioning_frames, cfg.data.resolution, cfg.model.dt
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, k, r, r, 3), dtype=np.uint8)
    many = rng.integers(0, 256, (args.batch, k, r, r, 3), dtype=np.uint8)
    n_steps, dt_t = tf.constant(args.steps, tf.int32), tf.constant(dt, tf.float32)

    xla = DEFAULT_XLA_MAX_BATCH if args.xla_max_batch is None else args.xla_max_batch
    compiled = tf.function(
        lambda f, n, d: {k: v for k, v in model.rollout(f, n, dt=d, xla_max_batch=xla).items()
                         if k in ("frames", "energy")},
        reduce_retracing=True)

    with tempfile.TemporaryDirectory() as tmp:
        path = export_saved_model(model, tmp, max_steps=max(DEFAULT_MAX_STEPS, args.steps),
                                  max_batch=max(DEFAULT_MAX_BATCH, args.batch),
                                  xla_max_batch=xla)
        signatures = tf.saved_model.load(str(path)).signatures
        rollout, frames_only = signatures["rollout"], signatures["rollout_frames"]
        runs = {
            "SavedModel": lambda x: rollout(frames=tf.constant(x), n_steps=n_steps,
                                            dt=dt_t)["frames"],
            "tf.function": lambda x: compiled(tf.constant(x), n_steps, dt_t)["frames"],
            "rollout_frames": lambda x: frames_only(frames=tf.constant(x), n_steps=n_steps,
                                                    dt=dt_t)["frames"],
        }
        diff = float(np.abs(runs["SavedModel"](one).numpy()
                            - runs["tf.function"](one).numpy()).max())
        latency = {name: median_time(lambda f=f: f(one), args.repeats, args.warmup)
                   for name, f in runs.items()}
        throughput = {name: args.batch / median_time(lambda f=f: f(many),
                                                      args.throughput_repeats, 1)
                      for name, f in runs.items()}

        server, thread, url = start_server(tmp, max_steps=max(DEFAULT_MAX_STEPS, args.steps))
        try:
            inputs = {"frames": one, "n_steps": args.steps, "dt": dt}
            http = median_time(lambda: predict(url, "rollout", inputs)["frames"],
                               args.repeats, args.warmup)
        finally:
            server.shutdown()
            thread.join()
            server.server_close()

    # The floor uses the rate of the precision the convolutions run in: a bfloat16 model's
    # decoder and encoder on the bfloat16 units (their FLOPs dominate the rollout's).
    peak = args.peak or conv_peak_gflops(
        dtype=tf.bfloat16 if args.precision == "mixed_bfloat16" else tf.float32)
    flops_1 = rollout_gflops(model, 1, args.steps)
    flops_b = rollout_gflops(model, args.batch, args.steps)
    floor_latency = flops_1 / peak
    floor_throughput = args.batch / (flops_b / peak)
    floor_latency_frames = rollout_gflops(model, 1, args.steps, with_energy=False) / peak
    floor_throughput_frames = args.batch / (
        rollout_gflops(model, args.batch, args.steps, with_energy=False) / peak)

    devices = [d.device_type for d in tf.config.list_physical_devices() if d.device_type != "CPU"]
    where = ", ".join(devices) or f"CPU only ({os.cpu_count()} cores, {platform.machine()})"
    print(f"HGN rollout, preset {args.preset!r} ({args.precision}, untrained weights), "
          f"{args.steps} steps, "
          f"{r}x{r}, {k} conditioning frames, XLA steps up to batch {xla}; "
          f"TensorFlow {tf.__version__}, {where}")
    print(f"SavedModel vs tf.function frames max |diff| = {diff:.1e}; "
          f"conv peak ({args.precision.replace('mixed_', '')}) {peak:.0f} GFLOP/s; "
          f"{flops_1:.2f} GFLOP per batch-1 rollout")
    print(f"{'':34s}{'SavedModel':>12s}{'tf.function':>13s}{'floor':>9s}{'reached':>9s}")
    print(f"{'latency, batch 1 (ms, median)':34s}{1e3 * latency['SavedModel']:12.1f}"
          f"{1e3 * latency['tf.function']:13.1f}{1e3 * floor_latency:9.1f}"
          f"{floor_latency / latency['SavedModel']:9.0%}")
    print(f"{f'throughput, batch {args.batch} (seq/s)':34s}{throughput['SavedModel']:12.1f}"
          f"{throughput['tf.function']:13.1f}{floor_throughput:9.1f}"
          f"{throughput['SavedModel'] / floor_throughput:9.0%}")
    print(f"frames only (the SavedModel's rollout_frames, no energy): batch 1 "
          f"{1e3 * latency['rollout_frames']:.1f} ms (floor {1e3 * floor_latency_frames:.1f}, "
          f"{floor_latency_frames / latency['rollout_frames']:.0%}); batch {args.batch} "
          f"{throughput['rollout_frames']:.1f} seq/s (floor {floor_throughput_frames:.1f}, "
          f"{throughput['rollout_frames'] / floor_throughput_frames:.0%})")
    print(f"hgn serve, batch-1 rollout over HTTP (JSON, 127.0.0.1): {1e3 * http:.1f} ms, of which "
          f"{1e3 * (http - latency['SavedModel']):.1f} ms is HTTP + JSON")


if __name__ == "__main__":
    main()
