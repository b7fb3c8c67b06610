"""The decoder fused (`hgn_tf.networks.Decoder`) against the plain upsample-then-conv decoder.

    python bench/bench_decoder.py [--frames 480] [--time-frames 32] [--rounds 3] [--repeats 3]

Both in one process, on the same variables: one `networks.Decoder` (paper preset: 64 filters, 3
blocks, 4x4x16 -> 32x32x3; fused, with its written-out gradient) and the plain computation of
the same layers (`_plain_decoder`: nearest x2 upsampling, then the 3x3 and 1x1 convolutions on
the upsampled image, TensorFlow's own gradients). FLOPs of the forward
and of the forward + backward (gradient with respect to the states and every weight) for
`--frames` states (480 = a paper training batch, 16 x 30) from
TensorFlow's graph profiler, and the time of the forward + backward on `--time-frames` states,
the two versions called alternately (`--rounds` rounds, each the median of `--repeats` calls) so
that a change in the machine's load hits both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tensorflow as tf  # noqa: E402
from floor import gflops, median_time  # noqa: E402

from hgn_tf import networks  # noqa: E402


def _plain_decoder(decoder, q):
    """The decoder as computed before the fusion, on its own sublayers."""
    x = q
    for block in decoder.blocks:
        u = tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)  # nearest x2
        h = tf.nn.leaky_relu(block.conv1(u), alpha=0.2)
        h = tf.nn.leaky_relu(block.conv2(h), alpha=0.2)
        x = h + block.skip(u)
    return decoder.out(x)


def _functions(decoder, call):
    @tf.function
    def forward(s):
        return call(s)

    @tf.function
    def forward_backward(s):
        with tf.GradientTape() as tape:
            tape.watch(s)
            y = tf.reduce_sum(tf.square(call(s)))
        return tape.gradient(y, [s, *decoder.trainable_variables])

    return forward, forward_backward


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=480)
    ap.add_argument("--time-frames", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    decoder = networks.Decoder(64, 3)
    states = tf.random.stateless_normal([args.frames, 4, 4, 16], seed=[0, 0])
    decoder(states[:1])
    # One decoder's variables, two computations.
    fns = {"plain": _functions(decoder, lambda s: _plain_decoder(decoder, s)),
           "fused": _functions(decoder, decoder)}
    spec = tf.TensorSpec(states.shape, states.dtype)
    print(f"decoder 64 filters, 3 blocks, 4x4x16 -> 32x32x3; threads={os.cpu_count()}")
    print(f"GFLOP for {args.frames} states (TensorFlow's graph profiler):")
    for name, (f, fb) in fns.items():
        print(f"  {name}: forward {gflops(f.get_concrete_function(spec)):.2f}, "
              f"forward + backward {gflops(fb.get_concrete_function(spec)):.2f}")
    small = states[: args.time_frames]
    diff = float(tf.reduce_max(tf.abs(fns["fused"][0](small) - fns["plain"][0](small))))
    print(f"largest |fused - plain| of the {args.time_frames} outputs: {diff:.2e}")
    times = {name: [] for name in fns}
    for r in range(args.rounds):
        for name, (_, fb) in fns.items():
            times[name].append(median_time(lambda fb=fb: fb(small), args.repeats))
        print(f"round {r + 1}: forward + backward of {args.time_frames} states: "
              + ", ".join(f"{n} {t[-1]:.3f} s" for n, t in times.items()))
    plain, fused = statistics.median(times["plain"]), statistics.median(times["fused"])
    print(f"median over rounds: plain {plain:.3f} s, fused {fused:.3f} s, "
          f"fused / plain {fused / plain:.2f}")


if __name__ == "__main__":
    main()
