"""What serving a float32-trained model in bfloat16 costs in accuracy (`hgn export --precision`).

    python bench/serving_precision.py --run-dir RUN [--sequences 256] [--batch 32]

Rolls out the run's test sequences over 30 frames with the trained model (its own precision)
and with its `mixed_bfloat16` twin (`HGN.with_precision`: the same weights, the encoder's and
decoder's hidden convolutions in bfloat16), both with XLA-compiled integrator steps as served,
and prints for each: the test pixel MSE (x1e4) on the frames the encoder read and on the frames
after them, its ratio to the mean-frame baseline, the median VPT, and the largest pixel difference
between the two models' frames. Speed is `bench_serving.py --precision`'s job.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True, help="a finished training run")
    parser.add_argument("--sequences", type=int, default=256, help="test sequences scored")
    parser.add_argument("--batch", type=int, default=32, help="sequences per rollout call")
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf
    from hgn_tf.export.limits import DEFAULT_XLA_MAX_BATCH

    from hgn_tf import data as data_lib
    from hgn_tf.evaluate import rollout_report
    from hgn_tf.physics import STORED_FRAMES
    from hgn_tf.train import load_run

    cfg, model = load_run(args.run_dir)
    data_cfg = dataclasses.replace(cfg.data, n_frames=STORED_FRAMES)
    truth = data_lib.load_arrays(data_cfg, "test", limit=args.sequences)["frames"]
    mean_frame = data_lib.load_arrays(data_cfg, "train", limit=args.sequences)["frames"].mean(
        axis=(0, 1))
    k = model.conditioning_frame_count

    def frames_of(m):
        fn = tf.function(lambda x: m.rollout(x, STORED_FRAMES, xla_max_batch=DEFAULT_XLA_MAX_BATCH)
                         ["frames"], reduce_retracing=True)
        return np.concatenate([fn(tf.constant(truth[i : i + args.batch])).numpy()
                               for i in range(0, len(truth), args.batch)])

    preds = {p: frames_of(model.with_precision(p))
             for p in ("float32", "mixed_bfloat16")}
    print(f"{args.run_dir}: {cfg.data.system}, trained in {cfg.model.precision}, "
          f"{len(truth)} test sequences, {STORED_FRAMES} frames, the encoder reads {k}; "
          f"TensorFlow {tf.__version__}")
    print(f"{'served in':16s}{'MSE read':>10s}{'/ mean':>8s}{'MSE after':>11s}{'/ mean':>8s}"
          f"{'VPT med':>9s}")
    for precision, pred in preds.items():
        r = rollout_report(pred, truth, None, mean_frame=mean_frame, frames_read=k)
        after = r.get("after", {"pixel_mse": float("nan"), "ratio_to_mean_frame": float("nan")})
        print(f"{precision:16s}{1e4 * r['read']['pixel_mse']:10.2f}"
              f"{r['read']['ratio_to_mean_frame']:8.3f}{1e4 * after['pixel_mse']:11.2f}"
              f"{after['ratio_to_mean_frame']:8.3f}{r['vpt_median']:9.1f}")
    a, b = preds.values()
    print(f"largest pixel difference between the two: {np.abs(a - b).max():.4f} "
          f"(mean {np.abs(a - b).mean():.2e}; pixels in [0, 1])")


if __name__ == "__main__":
    main()
