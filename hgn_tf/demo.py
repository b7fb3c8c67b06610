"""`make demo`: the main job, end to end, on a small CPU config.

Everything goes into one folder (default runs/demo):
    data/                the TFDS data (a small pendulum build: the first N sequences per split)
    data_pictures/       stored sequences as a PNG grid and a GIF
    run/                 the training run (config, checkpoints, TensorBoard, history)
    run/prior.*          the learned prior over the initial state (`hgn fit-prior`'s default)
    run/eval/            metrics.json and pictures (truth vs rollout beside the prediction floor,
                         backward, speeds, samples from the learned prior)
    export/hgn/<v>/      the SavedModel (TensorFlow Serving layout; its `sample` draws from the
                         learned prior)
    served_rollout.gif   a rollout requested over HTTP from the served SavedModel
    served_request.npy   the conditioning frames that request sent
    served_samples.gif   four 30-frame samples requested over HTTP (the `sample` signature)

Running it again reuses what is there: the data, the finished training run (a killed one
resumes; a run of another config, an earlier recipe or precision, is kept as run.previous-N and
a new one trained), and writes a new export version.
"""

from __future__ import annotations

import pathlib
import time

import numpy as np

from hgn_tf.config import PRECISIONS

__all__ = ["run_demo", "demo_config"]


# The demo's two recipes: with bfloat16 matrix units (AMX) a step is 1.7-1.9 times faster, so in
# about the same 10-12 minutes of training it takes the CPU scale's curriculum for 2,000 steps
# instead of a compressed one for 1,400 (README, Results: the demo rows).
BFLOAT16_RECIPE = dict(steps=2000, curriculum=((0, 10), (600, 15), (1200, 20), (1800, 30)))
FLOAT32_RECIPE = dict(steps=1400, curriculum=((0, 10), (300, 15), (600, 20), (900, 30)))
PRECISION_CHOICES = ("auto", *PRECISIONS)


def demo_config(out: pathlib.Path, steps: int | None = None, precision: str = "auto"):
    """The demo's run: `small`'s networks predicting 30 frames from the first 5.

    The encoder reads frames 0-4 and the model rolls out 30, fitted by a curriculum (10, 15, 20,
    then 30 frames): the CPU scale's recipe (`hgn_tf.config.cpu`), shortened to about 11
    minutes on 2 cores. `precision` "auto": mixed_bfloat16 and `BFLOAT16_RECIPE` where the CPU
    has bfloat16 matrix units (`hgn_tf.hardware`), else float32 and `FLOAT32_RECIPE`.
    """
    from hgn_tf import config, hardware
    from hgn_tf.errors import check
    from hgn_tf.physics import STORED_FRAMES

    check(precision in PRECISION_CHOICES, "precision", precision, f"one of {PRECISION_CHOICES}")
    if precision == "auto":
        precision = "mixed_bfloat16" if hardware.bfloat16_matrix_units() else "float32"
    recipe = BFLOAT16_RECIPE if precision == "mixed_bfloat16" else FLOAT32_RECIPE
    cfg = config.small("pendulum").replace(
        data=dict(data_dir=str(out / "data"), n_frames=STORED_FRAMES),
        model=dict(input_mode="inference", input_frames=5, precision=precision),
        train=recipe)
    if steps is not None:
        cfg = cfg.replace(train=dict(steps=steps))
    return cfg


def _run_dir_for(out: pathlib.Path, cfg) -> pathlib.Path:
    """out/run, resumed if it holds this config's run. A run of another config there (an
    earlier demo's recipe, another precision or --steps) is kept, renamed out/run.previous-N."""
    from hgn_tf.config import CONFIG_FILE, RunConfig

    run_dir = out / "run"
    if (run_dir / CONFIG_FILE).exists() and RunConfig.load(run_dir / CONFIG_FILE) != cfg:
        n = 1
        while (out / f"run.previous-{n}").exists():
            n += 1
        run_dir.rename(out / f"run.previous-{n}")
        _say(f"{run_dir} held a run of another config; kept as {out / f'run.previous-{n}'}")
    return run_dir


def _say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_demo(out="runs/demo", steps: int | None = None, precision: str = "auto") -> pathlib.Path:
    from hgn_tf import data, plots

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = demo_config(out, steps, precision)
    _say(f"1/5 building {cfg.data.tfds_name} (first {cfg.data.max_examples} sequences per split)")
    data.build(cfg.data)
    frames = data.load_arrays(cfg.data, "train", limit=8)["frames"]
    plots.grid_png(frames, out / "data_pictures" / "pendulum_train.png")
    plots.sequences_gif(frames, out / "data_pictures" / "pendulum_train.gif")

    from hgn_tf.evaluate import evaluate
    from hgn_tf.prior import PriorConfig, fit_run_prior
    from hgn_tf.train import train

    run_dir = _run_dir_for(out, cfg)
    _say(f"2/5 training for {cfg.train.steps} steps in {cfg.model.precision} into {run_dir} "
         f"(the encoder reads {cfg.model.input_frames} frames; the model rolls out "
         f"{cfg.data.n_frames})")
    train(cfg, run_dir, verbose=2)
    # Samples from N(0, I) through f_psi start where the decoder was never trained (blobs: the
    # bob found in 7% of the bfloat16 demo's sample frames); the learned prior's start where the
    # encoder puts real sequences (53%, its own test rollouts 54%). README, "Samples that are
    # physical".
    _say("3/5 fitting a learned prior over the initial state, then evaluating")
    fit_run_prior(run_dir, PriorConfig(seed=cfg.train.seed))
    evaluate(run_dir, max_sequences=256, prediction_floor=True, prior="learned")

    from hgn_tf.export.client import predict, rollout_to_gif
    from hgn_tf.export.saved_model import export_saved_model
    from hgn_tf.export.server import start_server

    _say("4/5 exporting the SavedModel")
    version_dir = export_saved_model(run_dir, out / "export" / "hgn")
    _say(f"5/5 serving {version_dir.parent} and requesting one rollout over HTTP")
    test = data.load_arrays(cfg.data, "test", limit=2)["frames"]
    request = out / "served_request.npy"
    np.save(request, (test[:, : cfg.conditioning_frames] * 255 + 0.5).astype(np.uint8))
    server, thread, url = start_server(version_dir.parent)
    try:
        gif = rollout_to_gif(url, request, out / "served_rollout.gif", n_steps=30)
        samples = predict(url, "sample", {"n": 4, "n_steps": 30, "dt": cfg.model.dt,
                                          "seed": cfg.train.seed})
        samples_gif = plots.sequences_gif(samples["frames"], out / "served_samples.gif")
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
    _say(f"server at {url} answered; wrote {gif} and {samples_gif}; server stopped")
    _say(f"done: everything is in {out.resolve()}")
    return out
