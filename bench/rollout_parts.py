"""Where a served rollout's time goes: encoder, integrator, decoder and energy, timed apart.

    python bench/rollout_parts.py [--batch 1] [--preset paper]

One model with untrained weights (the time does not depend on them); each part is its own
`tf.function` on the previous part's output, the integrator's steps compiled by XLA up to batch 16
(the export's default); the whole `HGN.rollout` beside them. Medians of 15 calls after 3 warm-up
calls, in ms.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tensorflow as tf  # noqa: E402
from floor import median_time  # noqa: E402

from hgn_tf import config as C  # noqa: E402
from hgn_tf.train import build_model  # noqa: E402


def _median_ms(fn, *args):
    return 1000 * median_time(lambda: fn(*args), repeats=15, warmup=3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="paper", choices=sorted(C.PRESETS))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    cfg = C.preset(args.preset)
    model = build_model(cfg)
    r = cfg.data.resolution
    frames = tf.random.stateless_uniform([args.batch, args.steps, r, r, 3], seed=[0, 0])
    encode = tf.function(lambda f: model.encode(model.conditioning_frames(f)))
    q0, p0, _ = encode(frames)
    integrate = tf.function(lambda q, p: model.integrate(q, p, args.steps, cfg.model.dt,
                                                         xla_max_batch=16))
    qs, ps = integrate(q0, p0)
    decode = tf.function(lambda q: model.decode(q))
    energy = tf.function(lambda q, p: model.energies(q, p))
    rollout = tf.function(lambda f: model.rollout(f, args.steps, xla_max_batch=16))
    print(f"preset={args.preset} batch={args.batch} frames={args.steps} (ms, median): "
          f"encode {_median_ms(encode, frames):.1f}  integrate {_median_ms(integrate, q0, p0):.1f}"
          f"  decode {_median_ms(decode, qs):.1f}  energy {_median_ms(energy, qs, ps):.1f}"
          f"  whole rollout {_median_ms(rollout, frames):.1f}")


if __name__ == "__main__":
    main()
