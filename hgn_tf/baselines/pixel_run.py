"""`hgn baselines pixel-hnn`: PixelHNN on rendered pendulum frames and its latent orbits.

Data: trajectories of our `pendulum` (constants and r ~ U(1.3, 2.3) as HGN's; no noise, as the
official gym frames) sampled every `dt` = 0.05 (the gym pendulum's step) and drawn by our
renderer at 32x32 RGB; example i of a split is a pure function of (seed, split, i). The input at
frame t >= 1 is the official one, x_t = [frame_t, frame_t - frame_t-1] (position, and velocity as
a frame difference; `inputs`); a training example is (x_t, x_t+1). The model reads and draws
one channel per frame, red minus green (`to_model` / `from_model`): the official preprocessing,
which zeroes gym's white background; it zeroes our neutral grey one too and keeps the red bob
(0.6). Frames are rebuilt exactly from it, since the renderer paints one colour over the
background (`from_model`).

Measured (2026-12-02, the autoencoder alone, 40 x 58 examples, Adam 1e-3, batch 200; ratios to
the mean frame): on the raw RGB frame pairs (background 0.3 in every pixel) the autoencoder sits
on the mean frame for 1,000 steps and then wanders between 0.46x and 0.76x up to 7,000 steps (the
constant background dominates every first-layer pre-activation, so the small bob barely moves the
encoder's output); with the background subtracted it reaches 0.17x in 2,000 steps, but the
staged schedule then gives a still latent (the next frame differs from this one by a few pixels,
so a 2-number code need not carry the velocity); on the official [frame, difference] input in
RGB all 6,144-input relu units died in the first steps (a constant code); on red minus green
(2,048 inputs) it reaches 0.35x in 500 steps and 0.15x in 2,000.

Evaluation on held-out trajectories: the first input is encoded, z0 = E(x_1), the latent HNN's
field is integrated (DOP853, rtol 1e-12; one latent time unit per frame, so the field's Euler
step of training is dt = 1) for `eval_frames` frames, and the decoded first halves of the
rollout are scored against frames 1, 2, ...:

    latent H drift    max_t |H(z_t) - H(z_0)| / std of H(z_0) over the trajectories
                      (the learned H, conserved by construction up to the solver)
    true energy drift the bob read back from the decoded frames (`physics.readback`), the
                      pendulum's H of the read (q, p); max_t |E_t - E_0| / E_0, beside the same
                      read from the true frames (the read-back floor); the typical drift is
                      the median over t instead of the max (the read-back's finite-difference
                      velocity turns one ghosted frame into a spike)
    energy error      mean_t |E_t - E_true| / E_true: a decoder that draws a still bob has no
                      drift but the wrong energy (p = 0), so the drift alone cannot pass it
    pixel MSE         mean over the first 30 frames of the squared pixel error, x1e4 (Table 1)

Writes OUT/metrics.json, OUT/latent.png (latent orbits), OUT/energy.png (read-back energy),
OUT/rollout.png (true and decoded frames), OUT/pixel_hnn.weights.h5 and
OUT/pixel_hnn_trained.json (the trained model and its settings: a rerun with the same settings
scores it again instead of retraining).
"""

from __future__ import annotations

import json
import time

import numpy as np

from hgn_tf import metrics, physics, plots
from hgn_tf.baselines import hnn
from hgn_tf.baselines.evaluate import rollout_field
from hgn_tf.baselines.pixel_hnn import OFFICIAL, STAGED, PixelHNN, PixelHNNConfig, fit_schedule
from hgn_tf.baselines.run import mark_trained, trained_before
from hgn_tf.errors import ConfigError, check, folder, positive_int
from hgn_tf.files import atomic_write_text, save_weights
from hgn_tf.physics import readback
from hgn_tf.physics.render import DEFAULT_BACKGROUND

__all__ = ["SCHEDULES", "from_model", "inputs", "pendulum_frames", "run_pixel_hnn", "to_model"]

SCHEDULES = {"official": OFFICIAL, "staged": STAGED}
DT = 0.05
_SPLITS = {"train": 0, "test": 1}
# The background as the renderer draws it (a uint8 level; neutral, so red minus green is 0) and
# the bob's colour.
_BACKGROUND = (np.rint(255 * np.asarray(DEFAULT_BACKGROUND)) / 255).astype(np.float32)
_BOB = np.asarray(physics.get("pendulum").colours[0], dtype=np.float32)


def pendulum_frames(n: int, n_frames: int, *, split: str = "train", seed: int = 0,
                    max_angle: float | None = None) -> dict:
    """{"frames": float32 [n, T, 32, 32, 3] in [0, 1], "q", "p": [n, T, 1], "t": [T]}.

    `max_angle` None: HGN's initial states (phase-space radius in [1.3, 2.3], swings up to ~2.3
    rad). A float: the official gym protocol's, q0 ~ U(-max_angle, max_angle) (official: pi / 6)
    and dq/dt ~ U(-1, 1) (gym's reset), small swings.
    """
    system = physics.get("pendulum")
    rngs = [np.random.default_rng(np.random.SeedSequence([seed, 10 + _SPLITS[split], i]))
            for i in range(n)]
    if max_angle is None:
        q0, p0 = (np.concatenate(a) for a in zip(*(system.sample_initial(r, 1) for r in rngs)))
    else:
        check(isinstance(max_angle, (int, float)) and 0 < max_angle <= np.pi, "max_angle",
              max_angle, "a float in (0, pi]", ConfigError)
        start = np.array([[r.uniform(-max_angle, max_angle), r.uniform(-1, 1)] for r in rngs])
        q0 = start[:, :1]
        p0 = system.momenta(q0, start[:, 1:])
    times = DT * np.arange(n_frames)
    q, p = system.simulate(q0, p0, times)
    frames = physics.render_states(system, q, 32).astype(np.float32) / 255
    return {"frames": frames, "q": q, "p": p, "t": times}


def to_model(frames: np.ndarray) -> np.ndarray:
    """Frames [..., H, W, 3] in [0, 1] -> [..., H, W, 1]: red minus green (0 on the background)."""
    return frames[..., :1] - frames[..., 1:2]


def from_model(drawn: np.ndarray) -> np.ndarray:
    """[..., H, W, 1] -> RGB frames: the inverse of `to_model`. A pixel the renderer painted with
    the bob's coverage a is background + a (bob - background), whose red minus green is
    a (bob_red - bob_green); a is clipped to [0, 1]."""
    alpha = np.clip(drawn / (_BOB[0] - _BOB[1]), 0, 1)
    return _BACKGROUND + alpha * (_BOB - _BACKGROUND)


def inputs(frames: np.ndarray) -> np.ndarray:
    """[N, T-1, 2 F]: x_t = [frame_t, frame_t - frame_t-1] for t = 1 .. T-1, each flattened (the
    official experiment-pixels layout). Reconstructing the difference is what makes the
    autoencoder carry the velocity: frame_t+1 alone differs from frame_t by a few pixels' worth,
    which a 2-number code can ignore at little cost."""
    flat = frames.reshape(frames.shape[0], frames.shape[1], -1)
    return np.concatenate([flat[:, 1:], flat[:, 1:] - flat[:, :-1]], axis=-1)


def _first_frame(model: PixelHNN, z: np.ndarray, shape) -> np.ndarray:
    decoded = model.decoder(np.float32(z.reshape(-1, z.shape[-1]))).numpy()
    size = int(np.prod(shape))
    return from_model(decoded[:, :size].reshape(*z.shape[:-1], *shape))


def run_pixel_hnn(out, *, schedule: str = "staged", steps: int = 3000, n_train: int = 40,
                  n_test: int = 8, frames: int = 60, eval_frames: int = 150, seed: int = 0,
                  max_angle: float | None = None, verbose: bool = False) -> dict:
    """Train a PixelHNN on pendulum frames and score its latent rollouts (module docstring)."""
    check(schedule in SCHEDULES, "schedule", schedule, f"one of {tuple(SCHEDULES)}",
          ConfigError)
    for name, value in (("steps", steps), ("n_train", n_train), ("n_test", n_test),
                        ("eval_frames", eval_frames)):
        positive_int(name, value)
    check(isinstance(frames, int) and frames >= 3, "frames", frames, "an integer >= 3")
    out = folder("out", out)
    out.mkdir(parents=True, exist_ok=True)
    train_frames = pendulum_frames(n_train, frames, split="train", seed=seed,
                                   max_angle=max_angle)["frames"]
    train = inputs(to_model(train_frames))
    x, x_next = train[:, :-1].reshape(-1, train.shape[-1]), train[:, 1:].reshape(
        -1, train.shape[-1])
    model = PixelHNN(PixelHNNConfig(pixels=train.shape[-1], seed=seed))
    settings = {"schedule": schedule, "steps": steps, "n_train": n_train, "frames": frames,
                "seed": seed, "max_angle": max_angle}
    marker, weights = out / "pixel_hnn_trained.json", out / "pixel_hnn.weights.h5"
    model(np.float32(x[:1]))  # builds the subclassed model (for saving and loading its weights)
    trained = trained_before(marker, settings)
    if trained is not None:
        # A finished training with the same settings (a rerun scores it again, not retrained).
        model.load_weights(weights)
        stages, train_s = trained["stages"], trained["train_s"]
    else:
        start = time.perf_counter()
        stages = fit_schedule(model, x, x_next, steps=steps, schedule=SCHEDULES[schedule],
                              seed=seed)
        train_s = time.perf_counter() - start
        save_weights(model, weights)
        mark_trained(marker, settings, {"stages": stages, "train_s": train_s})
    if verbose:
        for s in stages:
            print(f"stage {s['stage']} ({s['steps']} steps, weights {s['weights']}): "
                  f"ae {s['ae']:.2e} cc {s['cc']:.2e} hnn {s['hnn']:.2e}", flush=True)

    test = pendulum_frames(n_test, eval_frames + 1, split="test", seed=seed, max_angle=max_angle)
    shape = to_model(test["frames"][:1, :1]).shape[2:]
    # x_1 = [frame 1, frame 1 - frame 0]: the rollout's frame k is the truth's frame k + 1.
    z0 = model.encoder(inputs(to_model(test["frames"][:, :2]))[:, 0]).numpy().astype(np.float64)
    z = rollout_field(hnn.field_function(model.hnn), z0, np.arange(eval_frames, dtype=float),
                      solver="batched")
    learned_h = model.hnn.energy(z.reshape(-1, z.shape[-1])).numpy().reshape(z.shape[:2])
    decoded = _first_frame(model, np.nan_to_num(z), shape)
    truth = test["frames"][:, 1:]
    system = physics.get("pendulum")
    read_model = readback.read_state(decoded, system, DT).energy
    read_truth = readback.read_state(truth, system, DT).energy
    true_e0 = system.hamiltonian(test["q"][:, 0], test["p"][:, 0])
    inner = slice(2, -2)  # the 4th-order finite difference is one-sided within 2 frames of an end

    def drift(energy):
        e = energy[:, inner]
        return np.nanmax(np.abs(e - e[:, :1]), axis=1) / true_e0

    def typical_drift(energy):  # the median over time: one bad frame's read-back does not rule
        e = energy[:, inner]
        return np.nanmedian(np.abs(e - e[:, :1]), axis=1) / true_e0

    def error(energy):
        return np.nanmean(np.abs(energy[:, inner] - true_e0[:, None]), axis=1) / true_e0

    spread = max(float(np.std(learned_h[:, 0])), 1e-12)
    result = {
        "schedule": schedule, "steps": steps, "max_angle": max_angle, "train_s": train_s,
        "stages": stages,
        "n_train_pairs": len(x), "n_test": n_test, "eval_frames": eval_frames, "dt": DT,
        "diverged": int((~np.isfinite(z).all(axis=(1, 2))).sum()),
        "latent_h_drift": metrics.summary(metrics.energy_drift(learned_h, spread)),
        "true_energy_drift": metrics.summary(drift(read_model)),
        "true_energy_drift_readback_floor": metrics.summary(drift(read_truth)),
        "true_energy_typical_drift": metrics.summary(typical_drift(read_model)),
        "true_energy_typical_drift_readback_floor": metrics.summary(typical_drift(read_truth)),
        "true_energy_error": metrics.summary(error(read_model)),
        "true_energy_error_readback_floor": metrics.summary(error(read_truth)),
        "bob_found_fraction": float(np.isfinite(read_model).mean()),
        "pixel_mse_30_x1e4": 1e4 * float(metrics.sequence_mse(decoded[:, :30],
                                                              truth[:, :30]).mean()),
        "mean_frame_mse_30_x1e4": 1e4 * float(metrics.sequence_mse(
            np.broadcast_to(train_frames.mean(axis=(0, 1)), truth[:, :30].shape),
            truth[:, :30]).mean()),
    }
    atomic_write_text(out / "metrics.json", json.dumps(result, indent=1))
    series = {f"#{i}": (z[i, :, 0], z[i, :, 1]) for i in range(min(4, n_test))}
    plots.line_plot(out / "latent.png", series, xlabel="z_q", ylabel="z_p",
                    title="PixelHNN latent rollouts (150 frames each)",
                    styles={k: {"linewidth": 1} for k in series})
    frames_t = np.arange(eval_frames) * DT
    energy = {"truth #0 (read back)": (frames_t, read_truth[0]),
              "PixelHNN #0 (read back)": (frames_t, read_model[0]),
              "truth #1 (read back)": (frames_t, read_truth[1]),
              "PixelHNN #1 (read back)": (frames_t, read_model[1])}
    plots.line_plot(out / "energy.png", energy, xlabel="t", ylabel="pendulum H read from frames",
                    title="true energy of the decoded latent rollout")
    plots.grid_png([truth[:1, ::10], decoded[:1, ::10]], out / "rollout.png",
                   labels=["truth", "PixelHNN"])
    return result

