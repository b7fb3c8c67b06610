"""Tried and dropped (issue 12): the Hamiltonian's 3x3 convolutions on the 4x4 state as one
matmul over explicit patches (im2col) under XLA, against XLA's own convolution, at batch 1.

    python bench/integrator_im2col.py [--batch 1]

A separable-H-shaped net (6 Softplus 3x3 convs of 64 on a 4x4x16 state, a linear head), 29
leapfrog-like steps of three input gradients each, in a `tf.while_loop`: (a) each step compiled
by XLA (what the library does for small batches), (b) the whole loop compiled by XLA; each with
the convolutions as `tf.nn.conv2d` and as pad + 9 slices + one einsum. Both compute the same
numbers (the script prints q[0, 0, 0, 0] of each); medians of 15 calls, in ms.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tensorflow as tf  # noqa: E402
from floor import median_time  # noqa: E402

STEPS = 29


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    g = tf.random.Generator.from_seed(0)
    kernels = [tf.Variable(g.normal([3, 3, 16 if i == 0 else 64, 64]) * 0.1) for i in range(6)]
    biases = [tf.Variable(g.normal([64]) * 0.1) for _ in range(6)]
    head = tf.Variable(g.normal([4 * 4 * 64, 1]) * 0.1)

    def energy(x, im2col):
        for k, b in zip(kernels, biases):
            if im2col:
                xp = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
                patches = tf.concat([xp[:, i:i + 4, j:j + 4, :] for i in range(3)
                                     for j in range(3)], axis=-1)
                y = tf.einsum("bhwk,kf->bhwf", patches, tf.reshape(k, [9 * k.shape[2], 64]))
            else:
                y = tf.nn.conv2d(x, k, 1, "SAME")
            x = tf.nn.softplus(y + b)
        return tf.reduce_sum(tf.reshape(x, [tf.shape(x)[0], -1]) @ head)

    def make(im2col, whole_loop):
        def grad(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                e = energy(x, im2col)
            return tape.gradient(e, x)

        def step(q, p):
            p = p - 0.05 * grad(q)
            q = q + 0.125 * grad(p)
            return q, p - 0.05 * grad(q)

        inner = step if whole_loop else tf.function(step, jit_compile=True)

        def roll(q, p):
            def body(i, q, p):
                return (i + 1, *inner(q, p))
            return tf.while_loop(lambda i, *_: i < STEPS, body, (0, q, p))[1:]
        return tf.function(roll, jit_compile=whole_loop)

    q = g.normal([args.batch, 4, 4, 16])
    p = g.normal([args.batch, 4, 4, 16])
    for whole in (False, True):
        for im2col in (False, True, False, True):
            fn = make(im2col, whole)
            ms = 1000 * median_time(lambda fn=fn: fn(q, p), repeats=15, warmup=3)
            print(f"batch {args.batch}, XLA {'whole loop' if whole else 'per step  '}, "
                  f"{'im2col + einsum' if im2col else 'conv2d         '}: "
                  f"{ms:6.1f} ms  q[0,0,0,0] = {float(fn(q, p)[0][0, 0, 0, 0]):.6f}")


if __name__ == "__main__":
    main()
