"""`hgn baselines hnn-conv`: train HNN-conv on a `hamiltonian_systems` dataset, score Table 1.

Training (`hgn_tf.baselines.hnn_conv`, A.3): every window of three consecutive frames of the
train split's 30-frame sequences is an example (28 per sequence), shuffled (seeded), batches of
`batch_size` (A.3: 64), Adam (1e-3), `steps` steps of `model.fit`.

Scoring, as HGN's (`hgn_tf.evaluate.rollout_report`, the same figures as `hgn evaluate`): the
first `eval_sequences` sequences of each split; the encoder reads frames 0 and 1, the latent
rollout (leapfrog, 8 sub-steps per frame) gives 30 frames; the pixel MSE over all 30 (Table 1),
over the frames read (0-1) and after them (2-29), beside the mean-training-frame and repeat-last
baselines, valid prediction time, and the variance of the learned H along the rollout (Table 2).
Writes

    OUT/metrics.json          settings, training curves, the train and test reports
    OUT/rollout_vs_truth.png  4 test sequences, truth above the model (red bar: frames read)
    OUT/per_step_mse.png      the per-frame MSE over the 30 frames
    OUT/table.md              the row beside seed 003's HNN-conv and the paper's HGN (leapfrog)
    OUT/model/                the trained model (`hnn_conv.load`)
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from hgn_tf import data as data_lib
from hgn_tf import plots
from hgn_tf.baselines import hnn_conv
from hgn_tf.config import DataConfig
from hgn_tf.errors import check, folder, positive_int
from hgn_tf.evaluate import format_table, rollout_report
from hgn_tf.experiments.reference import HGN_TABLE1
from hgn_tf.physics import STORED_FRAMES

__all__ = ["PRESETS", "SEED003_HNN_CONV", "SYSTEMS", "run_hnn_conv", "write_table"]

SYSTEMS = ("mass_spring", "pendulum", "two_body", "three_body")
FRAMES_READ = 2
# Pixel MSE x1e4 (train, test) of HNN-conv in the earlier [Re] HGN version (seed 003, Table 1).
SEED003_HNN_CONV = {"mass_spring": (69.25, 69.25), "pendulum": (125.96, 125.93),
                    "two_body": (48.53, 48.55), "three_body": (57.72, 57.74)}
# Network sizes: the paper's (A.1) and smaller ones for a CPU.
PRESETS = {
    "paper": {},
    "small": {"encoder_filters": (16, 32, 32), "transformer_filters": 32, "decoder_filters": 32},
    "tiny": {"encoder_filters": (8,), "transformer_filters": 8, "decoder_filters": 8,
             "hidden": 16},
}


def _windows(cfg: DataConfig, split: str) -> tf.data.Dataset:
    """Every window [3, H, W, 3] of consecutive frames of the split's sequences."""
    seqs = data_lib.load(cfg, split).map(lambda ex: tf.signal.frame(ex["frames"], 3, 1, axis=0))
    return seqs.unbatch()


def _predict(model, frames: np.ndarray, batch_size: int = 32):
    fn = tf.function(lambda x: model.rollout(x, frames.shape[1]), reduce_retracing=True)
    outs = [fn(tf.constant(frames[i : i + batch_size])) for i in range(0, len(frames), batch_size)]
    return (np.concatenate([o["frames"].numpy() for o in outs]),
            np.concatenate([o["energy"].numpy() for o in outs]))


def run_hnn_conv(out, *, system: str = "pendulum", steps: int = 15_000, batch_size: int = 64,
                 preset: str = "paper", learning_rate: float = 1e-3, data_dir=None,
                 max_examples: int | None = None, eval_sequences: int = 256, seed: int = 0,
                 verbose: bool = False) -> dict:
    """Train, score and tabulate one system (module docstring); returns metrics.json's dict."""
    check(system in SYSTEMS, "system", system, f"one of {SYSTEMS}")
    check(preset in PRESETS, "preset", preset, f"one of {tuple(PRESETS)}")
    for name, value in (("steps", steps), ("batch_size", batch_size),
                        ("eval_sequences", eval_sequences)):
        positive_int(name, value)
    if max_examples is not None:
        positive_int("max_examples", max_examples)
    check(isinstance(learning_rate, float | int) and learning_rate > 0, "learning_rate",
          learning_rate, "a float > 0")
    out = folder("out", out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = DataConfig(system=system, n_frames=STORED_FRAMES, max_examples=max_examples,
                     data_dir=data_dir)
    data_lib.build(cfg)
    model_cfg = hnn_conv.HNNConvConfig(latent_dim=hnn_conv.latent_dim(system), seed=seed,
                                       resolution=cfg.resolution, **PRESETS[preset])
    model = hnn_conv.HNNConv(model_cfg)
    ds = (_windows(cfg, "train").shuffle(64 * (STORED_FRAMES - 2), seed=seed).repeat()
          .batch(batch_size, drop_remainder=True).prefetch(2))
    log_every = math.gcd(steps, 100)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), steps_per_execution=log_every)
    start = time.perf_counter()
    hist = model.fit(ds, epochs=steps // log_every, steps_per_epoch=log_every, verbose=0,
                     shuffle=False)
    train_s = time.perf_counter() - start
    curves = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    curves["step"] = [log_every * (i + 1) for i in range(len(curves["loss"]))]
    if verbose:
        print(f"{system}: {steps} steps in {train_s:.0f} s; last loss {curves['loss'][-1]:.3e} "
              f"(ae {curves['ae'][-1]:.2e}, cc {curves['cc'][-1]:.2e}, "
              f"hnn {curves['hnn'][-1]:.2e})", flush=True)
    hnn_conv.save(model, out / "model")

    train_frames = data_lib.load_arrays(cfg, "train", limit=eval_sequences)["frames"]
    mean_frame = train_frames.mean(axis=(0, 1))
    result = {"system": system, "model": "hnn_conv", "preset": preset, "steps": steps,
              "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
              "max_examples": max_examples, "config": dataclasses.asdict(model_cfg),
              "train_s": train_s, "curves": curves, "horizon": STORED_FRAMES,
              "frames_read": FRAMES_READ, "integrator": "leapfrog",
              "dt": 1.0 / model_cfg.substeps}
    for split in ("train", "test"):
        truth = (train_frames if split == "train"
                 else data_lib.load_arrays(cfg, "test", limit=eval_sequences)["frames"])
        pred, energy = _predict(model, truth)
        result[split] = rollout_report(pred, truth, energy, mean_frame=mean_frame,
                                       frames_read=FRAMES_READ)
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    n = min(4, len(truth))
    plots.grid_png([truth[:n], pred[:n]], out / "rollout_vs_truth.png",
                   labels=[f"truth {i}" for i in range(n)] + [f"HNN-conv {i}" for i in range(n)],
                   mark_after=FRAMES_READ - 1)
    plots.line_plot(
        out / "per_step_mse.png",
        {s: (np.arange(STORED_FRAMES), result[s]["per_step_mse"]) for s in ("train", "test")},
        xlabel="frame", ylabel="pixel MSE", vline=FRAMES_READ - 0.5,
        title=f"{system}: HNN-conv per-step MSE (encoder reads frames 0-1)")
    write_table(out, result)
    if verbose:
        print(format_table(result))
    return result


def write_table(out, result: dict) -> pathlib.Path:
    """OUT/table.md: the run's Table 1 row (x1e4) beside the published figures."""
    system = result["system"]
    tr, te = result["train"], result["test"]
    s3 = SEED003_HNN_CONV[system]
    hgn = HGN_TABLE1["leapfrog"][system]
    rows = [
        "Pixel MSE x1e4 over a 30-frame unroll (the encoder reads frames 0-1).",
        "",
        "| system | steps | train | test | test frames 0-1 | test frames 2-29 | test mean-frame "
        "baseline | test / mean frame | seed 003 HNN-conv (train/test) | HGN paper leapfrog "
        "(train/test) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {system} | {result['steps']} | {1e4 * tr['pixel_mse']:.2f} | "
        f"{1e4 * te['pixel_mse']:.2f} ± {1e4 * te['pixel_mse_std']:.2f} | "
        f"{1e4 * te['read']['pixel_mse']:.2f} | {1e4 * te['after']['pixel_mse']:.2f} | "
        f"{1e4 * te['baseline_mean_frame_mse']:.2f} | {te['ratio_to_mean_frame']:.2f} | "
        f"{s3[0]:.2f} / {s3[1]:.2f} | {hgn[0]:.2f} / {hgn[1]:.2f} |",
    ]
    path = pathlib.Path(out) / "table.md"
    path.write_text("\n".join(rows) + "\n")
    return path
