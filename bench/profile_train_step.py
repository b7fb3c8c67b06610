"""Where the time of an HGN training step goes: each part's time beside its FLOPs.

    python bench/profile_train_step.py [--preset paper] [--integrator leapfrog] [--repeats 5]

Times, each as its own `tf.function` on the same model (untrained weights; the time does not
depend on them) and the median of `--repeats` calls after a warm-up:

  * encoder   -- the posterior's parameters from the frames the encoder reads (and f_psi);
  * rollout   -- the integrator's T - 1 steps from (q0, p0) (the learned H's gradients);
  * decoder   -- every one of the B x T states decoded at once (it already runs as one batch);
each forward only and forward + backward (the gradient of a scalar of its output with respect to
its inputs and its weights, as training needs), then the whole Keras train step (forward,
backward, GECO, Adam).

FLOPs come from TensorFlow's own graph profiler (`tf.compat.v1.profiler`, float_operation) on
each part's graph; the rollout's loop body is counted on one integrator step and multiplied by
T - 1. The floor of a part is its FLOPs over the measured peak rate of this machine's convolutions
(`--peak` GFLOP/s, default: measured here on a 3x3, 64-channel convolution, the decoder's
largest layer, forward and backward).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tensorflow as tf  # noqa: E402
from floor import conv_peak_gflops, gflops, median_time, step_gflops  # noqa: E402

from hgn_tf import config as C  # noqa: E402
from hgn_tf.train import build_model  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="paper", choices=sorted(C.PRESETS))
    ap.add_argument("--integrator", default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--precision", default=None, help="ModelConfig.precision (mixed_bfloat16)")
    ap.add_argument("--peak", type=float, default=None, help="GFLOP/s (default: measured)")
    ap.add_argument("--input-frames", type=int, default=None,
                    help="the encoder reads this many frames (input_mode 'inference')")
    args = ap.parse_args(argv)

    cfg = C.preset(args.preset)
    if args.integrator:
        cfg = cfg.replace(model=dict(integrator=args.integrator))
    if args.precision:
        cfg = cfg.replace(model=dict(precision=args.precision))
    if args.input_frames:
        cfg = cfg.replace(model=dict(input_mode="inference", input_frames=args.input_frames))
    b, t, r = cfg.train.batch_size, cfg.data.n_frames, cfg.data.resolution
    model = build_model(cfg)
    frames = tf.random.stateless_uniform([b, t, r, r, 3], seed=[0, 0])
    reads = model.conditioning_frames(frames)
    q0, p0, _ = model.encode(reads)
    qs, _ = model.integrate(q0, p0, t, cfg.model.dt)
    states = tf.reshape(qs, [-1, *model.state_shape])
    enc_vars = model.encoder.trainable_variables + (
        model.transformer.trainable_variables if model.transformer is not None else [])
    dyn = model.hamiltonian_net if model.hamiltonian_net is not None else model.dynamics_net
    dyn_vars = dyn.trainable_variables
    dec_vars = model.decoder.trainable_variables
    dt = tf.constant(cfg.model.dt)

    @tf.function
    def enc_f(x):
        return model.encode(x)[:2]

    @tf.function
    def enc_fb(x):
        with tf.GradientTape() as tape:
            q, p, kl = model.encode(x, sample=True, seed=tf.constant([1, 2]))
            y = tf.reduce_sum(q) + tf.reduce_sum(p) + tf.reduce_sum(kl)
        return tape.gradient(y, enc_vars)

    @tf.function
    def roll_f(q, p):
        return model.integrate(q, p, t, dt)

    @tf.function
    def roll_fb(q, p):
        with tf.GradientTape() as tape:
            tape.watch([q, p])
            qs, ps = model.integrate(q, p, t, dt)
            y = tf.reduce_sum(tf.square(qs)) + tf.reduce_sum(tf.square(ps))
        return tape.gradient(y, [q, p, *dyn_vars])

    @tf.function
    def dec_f(s):
        return model.decoder(s)

    @tf.function
    def dec_fb(s):
        with tf.GradientTape() as tape:
            tape.watch(s)
            y = tf.reduce_sum(tf.square(model.decoder(s)))
        return tape.gradient(y, [s, *dec_vars])

    spec = lambda x: tf.TensorSpec(x.shape, x.dtype)  # noqa: E731
    step_f, step_fb = step_gflops(model, b)
    flops = {
        "encoder": (gflops(enc_f.get_concrete_function(spec(reads))),
                    gflops(enc_fb.get_concrete_function(spec(reads)))),
        "rollout": ((t - 1) * step_f, (t - 1) * step_fb),
        "decoder": (gflops(dec_f.get_concrete_function(spec(states))),
                    gflops(dec_fb.get_concrete_function(spec(states)))),
    }
    times = {
        "encoder": (median_time(lambda: enc_f(reads), args.repeats),
                    median_time(lambda: enc_fb(reads), args.repeats)),
        "rollout": (median_time(lambda: roll_f(q0, p0), args.repeats),
                    median_time(lambda: roll_fb(q0, p0), args.repeats)),
        "decoder": (median_time(lambda: dec_f(states), args.repeats),
                    median_time(lambda: dec_fb(states), args.repeats)),
    }
    ds = iter(tf.data.Dataset.from_tensors(frames).repeat())
    model.make_train_function()
    step_time = median_time(lambda: model.train_function(ds)["loss"], args.repeats)
    peak = args.peak or conv_peak_gflops(args.repeats)

    print(f"preset={args.preset} integrator={cfg.model.integrator} batch={b} frames={t} "
          f"resolution={r} threads={os.cpu_count()} conv peak {peak:.0f} GFLOP/s")
    print(f"{'part':<9} {'fwd GFLOP':>10} {'fwd s':>7} {'fwd+bwd GFLOP':>14} {'fwd+bwd s':>10} "
          f"{'floor s':>8} {'of floor':>8}")
    total_f = total_t = 0.0
    for name in flops:
        (ff, fb), (tf_, tb) = flops[name], times[name]
        total_f, total_t = total_f + fb, total_t + tb
        print(f"{name:<9} {ff:>10.2f} {tf_:>7.3f} {fb:>14.2f} {tb:>10.3f} {fb / peak:>8.3f} "
              f"{fb / peak / tb:>8.0%}")
    print(f"{'parts':<9} {'':>10} {'':>7} {total_f:>14.2f} {total_t:>10.3f} "
          f"{total_f / peak:>8.3f} {total_f / peak / total_t:>8.0%}")
    print(f"train step (Keras train_function, GECO + Adam included): {step_time:.3f} s; "
          f"floor {total_f / peak:.3f} s ({total_f / peak / step_time:.0%} of it reached)")


if __name__ == "__main__":
    main()
