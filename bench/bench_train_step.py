"""Training-step time of the HGN: prints seconds per step (median over timed steps).

    python bench/bench_train_step.py [--preset paper|small] [--integrator leapfrog] [--steps 10]

Paper settings (HGN A.1/A.5): batch 16, 32x32, 30 frames, leapfrog. The step is the model's own
`train_step` compiled by Keras (`model.make_train_function`), on random frames (the time does not
depend on the pixel values). Reports the device TensorFlow placed the step on.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from hgn_tf import config as C  # noqa: E402
from hgn_tf.train import build_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="paper", choices=sorted(C.PRESETS))
    ap.add_argument("--integrator", default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--jit", action="store_true", help="compile the step with XLA")
    args = ap.parse_args()
    cfg = C.preset(args.preset)
    if args.integrator:
        cfg = cfg.replace(model=dict(integrator=args.integrator))
    if args.batch_size:
        cfg = cfg.replace(train=dict(batch_size=args.batch_size))
    if args.frames:
        cfg = cfg.replace(data=dict(n_frames=args.frames))
    b, t, r = cfg.train.batch_size, cfg.data.n_frames, cfg.data.resolution
    model = build_model(cfg)
    if args.jit:
        model.compile(optimizer=model.optimizer, jit_compile=True)
    x = tf.random.stateless_uniform([b, t, r, r, 3], seed=[0, 0])
    ds = tf.data.Dataset.from_tensors(x).repeat()
    it = iter(ds)
    model.make_train_function()
    step = model.train_function
    t0 = time.perf_counter()
    step(it)
    compile_s = time.perf_counter() - t0
    for _ in range(args.warmup - 1):
        step(it)
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        logs = step(it)
        float(logs["loss"])  # wait for the step
        times.append(time.perf_counter() - t0)
    gpus = tf.config.list_physical_devices("GPU")
    print(f"preset={args.preset} integrator={cfg.model.integrator} batch={b} frames={t} "
          f"resolution={r} jit={args.jit} device={'GPU ' + gpus[0].name if gpus else 'CPU'} "
          f"threads={os.cpu_count()}")
    print(f"first step (trace + compile): {compile_s:.1f} s")
    print(f"step time: median {statistics.median(times):.3f} s, min {min(times):.3f} s, "
          f"max {max(times):.3f} s over {len(times)} steps")
    print(f"paper's 15,000 steps at this rate: {statistics.median(times) * 15000 / 3600:.2f} h")


if __name__ == "__main__":
    main()
