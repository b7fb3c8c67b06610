"""Training-step time of the HGN: prints seconds per step (median over timed steps).

    python bench/bench_train_step.py [--preset paper|small] [--integrator leapfrog] [--steps 10]

Paper settings (HGN A.1/A.5): batch 16, 32x32, 30 frames, leapfrog. The step is the model's own
`train_step` compiled by Keras (`model.make_train_function`), on random frames (the time does not
depend on the pixel values). Reports the device TensorFlow placed the step on.

Proving that a speed change does not change the result (`bench/before_after.sh` does both):

    python bench/bench_train_step.py --save-result ref.npz     # on the code before the change
    python bench/bench_train_step.py --check-result ref.npz    # on the code after it

`--save-result` stores the weights, the objective's terms and every gradient of one training
objective on a fixed batch (posterior sample included, from a fixed seed); `--check-result` loads
those weights, computes the same and prints the largest differences; it exits with status 1 when
a value or gradient differs by more than float32 tolerance (`--rtol`, default 1e-3 of the largest
entry of each gradient). Why 1e-3: the same code run on TensorFlow's two convolution backends
(oneDNN on and off) differs by up to 1.4e-4 on the paper preset's gradients, so any change that
sums a convolution's float32 products in another order (the fused decoder) lands there; a wrong
formula gives differences of order 1. Exactness itself is checked in float64
(`bench/decoder_float64_check.py`: 7.5e-15).
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/floor.py

import tensorflow as tf  # noqa: E402

from hgn_tf import config as C  # noqa: E402
from hgn_tf.train import build_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="paper", choices=sorted(C.PRESETS))
    ap.add_argument("--integrator", default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--input-frames", type=int, default=None,
                    help="the encoder reads this many frames and the rest are predicted "
                         "(ModelConfig input_mode 'inference'); default: the preset's")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--jit", action="store_true", help="compile the step with XLA")
    ap.add_argument("--precision", default=None, help="ModelConfig.precision (mixed_bfloat16)")
    ap.add_argument("--flops", action="store_true",
                    help="also print the forward GFLOP of the step's rollout (bench/floor.py)")
    ap.add_argument("--save-result", default=None, help="write weights, loss and gradients here")
    ap.add_argument("--check-result", default=None, help="compare with a --save-result file")
    ap.add_argument("--rtol", type=float, default=1e-3,
                    help="--check-result's tolerance, relative to each gradient's largest entry")
    args = ap.parse_args()
    cfg = C.preset(args.preset)
    if args.integrator:
        cfg = cfg.replace(model=dict(integrator=args.integrator))
    if args.precision:
        cfg = cfg.replace(model=dict(precision=args.precision))
    if args.batch_size:
        cfg = cfg.replace(train=dict(batch_size=args.batch_size))
    if args.frames:
        cfg = cfg.replace(data=dict(n_frames=args.frames))
    if args.input_frames:
        cfg = cfg.replace(model=dict(input_mode="inference", input_frames=args.input_frames))
    b, t, r = cfg.train.batch_size, cfg.data.n_frames, cfg.data.resolution
    model = build_model(cfg)
    if args.save_result or args.check_result:
        raise SystemExit(_result(model, cfg, args.save_result, args.check_result, args.rtol))
    if args.flops:
        from floor import rollout_gflops
        print(f"GFLOP: forward {rollout_gflops(model, b, t, with_energy=False):.2f} (the "
              f"encoder on {cfg.conditioning_frames} frames, {t - 1} integrator steps, {t} "
              "frames decoded, per sequence x batch)")
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
    print(f"preset={args.preset} integrator={cfg.model.integrator} "
          f"precision={getattr(cfg.model, 'precision', 'float32')} batch={b} frames={t} "
          f"read={cfg.conditioning_frames} "
          f"resolution={r} jit={args.jit} device={'GPU ' + gpus[0].name if gpus else 'CPU'} "
          f"threads={os.cpu_count()}")
    print(f"first step (trace + compile): {compile_s:.1f} s")
    print(f"step time: median {statistics.median(times):.3f} s, min {min(times):.3f} s, "
          f"max {max(times):.3f} s over {len(times)} steps")
    print(f"paper's 15,000 steps at this rate: {statistics.median(times) * 15000 / 3600:.2f} h")


def _objective_and_gradients(model, cfg):
    """recon, kl, GECO loss and d loss / d weights on a fixed batch, posterior sampled."""
    import numpy as np

    b, t, r = cfg.train.batch_size, cfg.data.n_frames, cfg.data.resolution
    frames = tf.random.stateless_uniform([b, t, r, r, 3], seed=[7, 7])
    model.seed_generator.state.assign(tf.constant([1234, 0], model.seed_generator.state.dtype))

    @tf.function
    def run():
        with tf.GradientTape() as tape:
            recon, kl = model.objective_terms(frames, training=True)
            loss = model._objective(recon, kl).loss
        return recon, kl, loss, tape.gradient(loss, model.trainable_variables)

    recon, kl, loss, grads = run()
    values = {"recon": recon, "kl": kl, "loss": loss}
    values.update({f"grad/{v.path}": g for v, g in zip(model.trainable_variables, grads)})
    return {k: np.asarray(v) for k, v in values.items()}


def _result(model, cfg, save, check, rtol=1e-3):
    import numpy as np

    if save:
        result = _objective_and_gradients(model, cfg)
        weights = {f"weight/{i}": w for i, w in enumerate(model.get_weights())}
        np.savez(save, **result, **weights)
        print(f"saved loss {result['loss']:.6g} and {len(result) - 3} gradients to {save}")
        return 0
    ref = np.load(check)
    model.set_weights([ref[f"weight/{i}"] for i in range(len(model.get_weights()))])
    result = _objective_and_gradients(model, cfg)
    worst, failed = [], []
    for key, value in result.items():
        expected = ref[key]
        scale = max(float(np.abs(expected).max()), 1e-30)
        err = float(np.abs(value - expected).max()) / scale
        worst.append((err, key))
        if not np.all(np.isfinite(value)) or err > rtol:
            failed.append(key)
    worst.sort(reverse=True)
    print(f"loss {result['loss']:.6g} (reference {float(ref['loss']):.6g}); recon, kl and "
          f"{len(result) - 3} gradients compared; largest relative differences:")
    for err, key in worst[:3]:
        print(f"  {key}: {err:.2e}")
    print("FAIL: " + ", ".join(failed) if failed else
          f"same result to float32 tolerance (rtol {rtol:g})")
    return 1 if failed else 0


if __name__ == "__main__":
    main()
