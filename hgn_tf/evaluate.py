"""Evaluation of a trained run: Table-1 / Table-2 metrics, baselines and pictures.

For each split (train, test), rollouts start from the posterior mean of the conditioning frames
and run for the data's `n_frames`, at the training dt:

    pixel_mse             mean over sequences of the per-sequence pixel MSE over the unroll
                          (HGN Table 1; printed x1e4 as in the paper), with `pixel_mse_std`
    per_step_mse          [T]: the MSE of frame t, averaged over sequences (also a PNG curve)
    hamiltonian_variance  mean over sequences of Var_t H_gamma(q_t, p_t) (HGN Table 2; x1e4)
    vpt                   valid prediction time (DeepMind's benchmark): the first frame whose
                          MSE / mean(truth^2) exceeds 0.025, in frames (T if none), averaged
    baseline_mean_frame_mse    predicting the mean training frame everywhere
    baseline_repeat_last_mse   repeating the last frame the encoder read (inference mode); in
                               autoencode mode, where the encoder reads every frame, the first
                               frame (the one the inferred state belongs to) is repeated

Pictures (in `<run>/eval/`): truth vs rollout, a backward rollout (roll forward to the last
frame, then integrate with -dt back to the start, against the reversed truth), double and half
speed rollouts, samples from the prior (PNG grids and GIFs), and the per-step MSE curve.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import tensorflow as tf

from hgn_tf import data as data_lib
from hgn_tf import plots
from hgn_tf.train import load_run

__all__ = ["evaluate", "rollout_metrics", "VPT_THRESHOLD"]

VPT_THRESHOLD = 0.025


def rollout_metrics(pred: np.ndarray, truth: np.ndarray, energy: np.ndarray | None) -> dict:
    """Metrics of predicted vs true frames [N, T, H, W, 3] (float in [0, 1])."""
    err = np.mean((pred - truth) ** 2, axis=(2, 3, 4))  # [N, T]
    per_seq = err.mean(axis=1)
    power = np.mean(truth**2, axis=(2, 3, 4))
    invalid = err / np.maximum(power, 1e-12) > VPT_THRESHOLD
    t = err.shape[1]
    vpt = np.where(invalid.any(axis=1), invalid.argmax(axis=1), t)
    out = {
        "pixel_mse": float(per_seq.mean()),
        "pixel_mse_std": float(per_seq.std()),
        "per_step_mse": [float(x) for x in err.mean(axis=0)],
        "vpt": float(vpt.mean()),
    }
    if energy is not None:
        out["hamiltonian_variance"] = float(np.var(energy, axis=1).mean())
    return out


def _predict(model, frames: np.ndarray, batch_size: int, n_steps: int, dt: float):
    preds, energies = [], []
    fn = tf.function(lambda x: model.rollout(x, n_steps, dt), reduce_retracing=True)
    for i in range(0, len(frames), batch_size):
        out = fn(tf.constant(frames[i : i + batch_size]))
        preds.append(out["frames"].numpy())
        if "energy" in out:
            energies.append(out["energy"].numpy())
    return np.concatenate(preds), (np.concatenate(energies) if energies else None)


def evaluate(
    run_dir,
    *,
    max_sequences: int = 512,
    batch_size: int = 32,
    pictures: bool = True,
    verbose: bool = True,
) -> dict:
    """Evaluate the run in `run_dir`; writes `<run_dir>/eval/metrics.json` and pictures."""
    if max_sequences <= 0:
        raise ValueError(f"`max_sequences` must be positive, got {max_sequences!r}.")
    run_dir = pathlib.Path(run_dir)
    cfg, model = load_run(run_dir)
    out_dir = run_dir / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    mc = cfg.model
    t = cfg.data.n_frames
    train_frames = data_lib.load_arrays(cfg.data, "train", limit=max_sequences)["frames"]
    mean_frame = train_frames.mean(axis=(0, 1), keepdims=True)
    metrics = {
        "system": cfg.data.system,
        "n_frames": t,
        "dt": mc.dt,
        "integrator": mc.integrator,
        "input_mode": mc.input_mode,
    }
    for split in ("train", "test"):
        truth = (
            train_frames
            if split == "train"
            else data_lib.load_arrays(cfg.data, "test", limit=max_sequences)["frames"]
        )
        pred, energy = _predict(model, truth, batch_size, t, mc.dt)
        m = rollout_metrics(pred, truth, energy)
        m["baseline_mean_frame_mse"] = float(np.mean((truth - mean_frame) ** 2))
        anchor = mc.input_frames - 1 if mc.input_mode == "inference" else 0
        m["baseline_repeat_last_mse"] = float(np.mean((truth - truth[:, anchor : anchor + 1]) ** 2))
        m["n_sequences"] = int(len(truth))
        metrics[split] = m
        if split == "test":
            test_truth, test_pred = truth, pred
    with open(out_dir / "metrics.json", "w") as f:
        json.dump(metrics, f, indent=2)
    plots.line_plot(
        out_dir / "per_step_mse.png",
        {s: (np.arange(t), metrics[s]["per_step_mse"]) for s in ("train", "test")},
        xlabel="frame",
        ylabel="pixel MSE",
        title=f"{cfg.data.system}: per-step MSE",
    )
    if pictures:
        _pictures(model, cfg, test_truth, test_pred, out_dir)
    if verbose:
        print(format_table(metrics))
    return metrics


def format_table(metrics: dict) -> str:
    rows = ["split  pixel_mse(x1e4)      H_var(x1e4)  vpt   mean-frame(x1e4)  repeat-last(x1e4)"]
    for s in ("train", "test"):
        m = metrics[s]
        hv = m.get("hamiltonian_variance")
        rows.append(
            f"{s:5}  {m['pixel_mse'] * 1e4:7.2f} +- {m['pixel_mse_std'] * 1e4:6.2f}  "
            f"{(hv * 1e4 if hv is not None else float('nan')):11.3f}  {m['vpt']:4.1f}  "
            f"{m['baseline_mean_frame_mse'] * 1e4:16.2f}  "
            f"{m['baseline_repeat_last_mse'] * 1e4:17.2f}"
        )
    return "\n".join(rows)


def _pictures(model, cfg, truth, pred, out_dir: pathlib.Path, n: int = 4):
    mc, t = cfg.model, cfg.data.n_frames
    x = tf.constant(truth[:n])
    plots.grid_png(
        [truth[i : i + 1] for i in range(n)] + [pred[i : i + 1] for i in range(n)],
        out_dir / "rollout_vs_truth.png",
        labels=[f"truth {i}" for i in range(n)] + [f"model {i}" for i in range(n)],
    )
    plots.sequences_gif(
        np.concatenate([truth[:n], pred[:n]], axis=0), out_dir / "rollout_vs_truth.gif"
    )
    # Backward: forward to the last frame, then -dt back to frame 0, against the reversed truth.
    q0, p0, _ = model.encode(model.conditioning_frames(x))
    qs, ps = model.integrate(q0, p0, t, mc.dt)
    qb, _ = model.integrate(qs[:, -1], ps[:, -1], t, -mc.dt)
    back = model.decode(qb).numpy()
    plots.grid_png(
        [truth[:n, ::-1], back],
        out_dir / "backward.png",
        labels=[f"truth rev {i}" for i in range(n)] + [f"back {i}" for i in range(n)],
    )
    plots.sequences_gif(back, out_dir / "backward.gif")
    fast = model.rollout(x, t, 2 * mc.dt)["frames"].numpy()
    slow = model.rollout(x, t, 0.5 * mc.dt)["frames"].numpy()
    plots.grid_png(
        [pred[:n], fast, slow],
        out_dir / "speeds.png",
        labels=[f"1x {i}" for i in range(n)]
        + [f"2x {i}" for i in range(n)]
        + [f"0.5x {i}" for i in range(n)],
    )
    plots.sequences_gif(np.concatenate([pred[:n], fast, slow]), out_dir / "speeds.gif")
    if not mc.deterministic:
        samples = model.sample(8, t, seed=tf.constant([cfg.train.seed, 1]))["frames"].numpy()
        plots.grid_png(samples, out_dir / "samples.png")
        plots.sequences_gif(samples, out_dir / "samples.gif")
