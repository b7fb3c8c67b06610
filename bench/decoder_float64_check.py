"""The decoder's residual blocks of two code versions compared in float64 (value and gradients).

    python bench/decoder_float64_check.py --save ref.npz     # on the code before a change
    python bench/decoder_float64_check.py --check ref.npz    # on the code after it

The paper preset's blocks (64 filters, 3 blocks: 4x4x16 -> 32x32x64) built in float64 with
fixed random weights (the `--save` run's, stored in the file), on 64 random states: the blocks'
output, its gradient with respect to the states, and every weight's gradient, of the scalar
sum(output * c) for a fixed random c. In float64 a rewrite that only reorders sums differs by
~1e-15 of the largest entry; float32 rounding in the full training step (`bench_train_step.py
--check-result`) is ~1e-4 there, too coarse to tell a reordering from a small error.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from hgn_tf import networks  # noqa: E402


def _result(decoder, q):
    weights = [v for block in decoder.blocks for v in block.trainable_variables]
    c = tf.random.stateless_normal([q.shape[0], 32, 32, 64], seed=[8, 8], dtype=tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(q)
        x = q
        for block in decoder.blocks:
            x = block(x)
        y = tf.reduce_sum(x * c)
    grads = tape.gradient(y, [q, *weights])
    return {"value": x.numpy(), "d/dq": grads[0].numpy(),
            **{f"d/d {v.path}": g.numpy() for v, g in zip(weights, grads[1:])}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", help="write weights and result here")
    group.add_argument("--check", help="compare with a --save file")
    args = ap.parse_args(argv)

    decoder = networks.Decoder(64, 3, name="decoder", dtype="float64")
    q = tf.random.stateless_normal([64, 4, 4, 16], seed=[9, 9], dtype=tf.float64)
    decoder(q)
    if args.save:
        rng = np.random.default_rng(0)
        weights = [rng.normal(scale=1 / np.sqrt(np.prod(w.shape[:-1])) if w.ndim > 1 else 0.3,
                              size=w.shape) for w in decoder.get_weights()]
        decoder.set_weights(weights)
        result = _result(decoder, q)
        np.savez(args.save, **{f"weight/{i}": w for i, w in enumerate(weights)},
                 **{f"result/{k}": v for k, v in result.items()})
        print(f"saved {len(result)} arrays (value, d/dq, {len(result) - 2} weight gradients)")
        return
    ref = np.load(args.check)
    decoder.set_weights([ref[f"weight/{i}"] for i in range(len(decoder.get_weights()))])
    result = _result(decoder, q)
    errs = sorted(((float(np.abs(v - ref[f"result/{k}"]).max() / np.abs(ref[f"result/{k}"]).max()),
                    k) for k, v in result.items()), reverse=True)
    for err, key in errs[:3]:
        print(f"  {key}: {err:.2e} of its largest entry")
    print(f"largest relative difference over {len(errs)} arrays: {errs[0][0]:.2e}")


if __name__ == "__main__":
    main()
