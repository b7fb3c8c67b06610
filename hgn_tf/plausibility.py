"""Physical plausibility of frame sequences: the state read back from the pixels, scored (numpy).

A model's rollouts and samples are pictures; `hgn_tf.physics.readback` turns them back into the
true system's positions, momenta and energy, and the functions here score them. The same scores
on the ground-truth frames are the floor a model is compared with (the test frames are rendered
from noisy states, so the floor includes the dataset's noise).

Per sequence (arrays [N]):

    found_fraction         the fraction of frames in which every body is found (confidence >=
                           readback.FOUND_THRESHOLD = 0.5: at least half a disc's coverage near
                           its centroid, net of its colour found elsewhere in the frame)
    energy_rel_var         Var_t E_t / mean_t(E_t)^2 of the true conserved energy E along the
                           decoded trajectory (H; the damped oscillator's invariant)
    energy_rel_drift       |mean E over the last quarter of the frames - mean E over the first
                           quarter| / |mean_t E_t|: a trend (a rollout losing or gaining energy),
                           robust to the per-frame noise that energy_rel_var measures
    position_error_px      mean over frames and bodies of the distance (pixels) between the centre
                           read back and the true one (rollouts: the stored clean state)
    constraint_residual    mean over frames of |residual| (world units; the pendulums' rods)

The energy scores are NaN for a sequence with a frame where some body has no centroid at all (no
pixel of its colour: there is no trajectory to differentiate); the summaries average over the
others and count them (`energy_sequences`). They do not wait for the bodies to be found: they
score whatever the reader locates (a faint or smeared blob too), so read them beside
found_fraction. A sequence is `plausible` when every body is found in every frame and its
energy_rel_var is at most ENERGY_REL_VAR_TOLERANCE = 1e-2 (the energy's standard deviation within
10% of its mean). `write_pictures` draws the tracks read back over the frames and the energy read
back over time.

Why an absolute tolerance, not a multiple of the ground truth's. Read back from the clean states
rendered, every system's sequences stay below 2e-3 (64 test sequences per system; the worst is
double_pendulum's 1.8e-3, most are below 1e-4): the reader's error (~0.002 pixel) and the 4th-order
finite differences cost little. The stored frames are rendered from states with independent noise
on every frame (std 0.05-0.2 in q), which finite differences turn into velocity noise of ~noise /
dt: their energy_rel_var is 0.02-14 (median per system, README), far above anything a smooth
trajectory shows. That noisy floor is reported beside a model's figures, as the issue asks, but a
model that draws smooth clean dynamics is judged against the tolerance.
"""

from __future__ import annotations

import pathlib

import numpy as np

from hgn_tf import plots
from hgn_tf.errors import DataError
from hgn_tf.physics import project
from hgn_tf.physics.base import PhysicalSystem
from hgn_tf.physics.readback import FOUND_THRESHOLD, Readback, read_state

__all__ = [
    "ENERGY_REL_VAR_TOLERANCE",
    "energy_rel_drift",
    "energy_rel_var",
    "physics_report",
    "plausible",
    "sequence_scores",
    "summarise",
    "write_pictures",
]

# The largest energy_rel_var of a plausible sequence (module docstring).
ENERGY_REL_VAR_TOLERANCE = 1e-2


def _energies(energy) -> np.ndarray:
    energy = np.asarray(energy, np.float64)
    if energy.ndim != 2 or energy.shape[1] < 2:
        raise DataError(f"`energy` must be [N, T] with T >= 2, got shape {list(energy.shape)}.",
                        "energy")
    return energy


def energy_rel_var(energy) -> np.ndarray:
    """[N]: Var_t E / mean_t(E)^2 (NaN where a frame's energy is NaN)."""
    energy = _energies(energy)
    with np.errstate(invalid="ignore", divide="ignore"):
        return energy.var(axis=1) / energy.mean(axis=1) ** 2


def energy_rel_drift(energy) -> np.ndarray:
    """[N]: |mean of the last quarter of E - mean of the first quarter| / |mean E|."""
    energy = _energies(energy)
    quarter = max(1, energy.shape[1] // 4)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.abs(energy[:, -quarter:].mean(axis=1) - energy[:, :quarter].mean(axis=1))
                / np.abs(energy.mean(axis=1)))


def sequence_scores(readback: Readback, system: PhysicalSystem, resolution: int,
                    true_q=None) -> dict:
    """The per-sequence scores [N] of the module docstring (position error only with `true_q`).

    Args:
      readback: `physics.readback.read_state(frames, system, dt)`.
      system: the system the frames should show.
      resolution: pixels a side of the frames.
      true_q: [N, T, dim] the true coordinates of the same frames, or None.
    """
    energy = readback.energy
    scores = {
        "found_fraction": readback.found.mean(axis=1),
        "energy_rel_var": energy_rel_var(energy),
        "energy_rel_drift": energy_rel_drift(energy),
    }
    if true_q is not None:
        true_q = np.asarray(true_q, np.float64)
        if true_q.shape[:2] != readback.q.shape[:2]:
            raise DataError(f"`true_q` must be [N, T, dim] = {list(readback.q.shape)}, got "
                            f"{list(true_q.shape)}.", "true_q")
        truth = project(system.positions(true_q), system.world_extent, resolution)
        read = project(readback.positions, system.world_extent, resolution)
        distance = np.linalg.norm(read - truth, axis=-1)  # [N, T, B], NaN for a missing body
        scores["position_error_px"] = _nanmean_per_sequence(distance)
    if readback.constraint_residual is not None:
        scores["constraint_residual"] = _nanmean_per_sequence(np.abs(readback.constraint_residual))
    return scores


def _nanmean_per_sequence(x: np.ndarray) -> np.ndarray:
    """[N]: the mean of the finite values of each x[i] (NaN where there is none)."""
    x = x.reshape(len(x), -1)
    finite = np.isfinite(x)
    count = finite.sum(axis=1)
    total = np.where(finite, x, 0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def summarise(scores: dict) -> dict:
    """Plain floats: the mean (and median) over sequences of each score, NaN ones left out."""
    out = {"n_sequences": int(len(scores["found_fraction"])),
           "found_fraction": float(np.mean(scores["found_fraction"]))}
    energy_ok = np.isfinite(scores["energy_rel_var"])
    out["energy_sequences"] = int(energy_ok.sum())
    for key in ("energy_rel_var", "energy_rel_drift", "position_error_px", "constraint_residual"):
        if key not in scores:
            continue
        values = np.asarray(scores[key], np.float64)
        values = values[np.isfinite(values)]
        out[key] = float(values.mean()) if values.size else None
        out[f"{key}_median"] = float(np.median(values)) if values.size else None
    return out


def plausible(scores: dict, tolerance: float = ENERGY_REL_VAR_TOLERANCE) -> np.ndarray:
    """[N] bool: every body found in every frame and energy_rel_var <= `tolerance`."""
    if not (np.isfinite(tolerance) and tolerance > 0):
        raise DataError(f"`tolerance` must be a finite number > 0, got {tolerance!r}.",
                        "tolerance")
    with np.errstate(invalid="ignore"):
        calm = np.asarray(scores["energy_rel_var"]) <= tolerance
    return (np.asarray(scores["found_fraction"]) == 1) & calm


def physics_report(frames, system: PhysicalSystem, dt: float, *, true_q=None, t0: float = 0.0,
                   found_threshold: float = FOUND_THRESHOLD) -> dict:
    """Read frames [N, T, H, W, 3] back and summarise their scores.

    Args:
      frames: uint8 or float in [0, 1], drawn like `system`'s.
      dt, t0: time between frames and the time of frame 0.
      true_q: [N, T, dim] the true coordinates (rollouts), or None (samples).
      found_threshold: the confidence at which a body counts as found.

    Returns:
      `summarise(sequence_scores(...))` and `plausible_fraction`, the share of `plausible`
      sequences.
    """
    frames = np.asarray(frames)
    readback = read_state(frames, system, dt, t0=t0, found_threshold=found_threshold)
    scores = sequence_scores(readback, system, frames.shape[-2], true_q)
    return {**summarise(scores), "plausible_fraction": float(plausible(scores).mean())}


def write_pictures(frames, system: PhysicalSystem, dt: float, out_dir, stem: str, *,
                   true_energy=None, reference_frames=None, t0: float = 0.0) -> tuple:
    """The state read back from frames [N, T, H, W, 3], shown: two pictures in `out_dir`.

    `<stem>_tracks.png`: the frames (one row per sequence) with each body's track read back drawn
    over them (plots.tracks_png: a line through its centres so far and a cross at the frame's).
    `<stem>_energy.png`: the true energy read back along each sequence, E_t / mean_t E, beside
    `true_energy` [N, T] (dashed, same colour) when given, and the energy read back the same
    way from `reference_frames` [M, T', H, W, 3] (real sequences, for samples: grey, dashed),
    each curve over its own mean.

    Returns:
      the two paths.
    """
    frames = np.asarray(frames)
    state = read_state(frames, system, dt, t0=t0)
    resolution = frames.shape[-2]
    out_dir = pathlib.Path(out_dir)
    tracks = plots.tracks_png(frames, project(state.positions, system.world_extent, resolution),
                              out_dir / f"{stem}_tracks.png",
                              labels=[f"seq {i}" for i in range(len(frames))])
    frame_index = np.arange(frames.shape[1])
    series, styles = {}, {}
    for i, energy in enumerate(state.energy):
        if true_energy is not None:
            reference = np.mean(true_energy[i])
        else:  # read back: NaN where the body was not found (a blank rollout: everywhere)
            finite = energy[np.isfinite(energy)]
            reference = finite.mean() if finite.size else 1.0
        series[f"{i} read back"] = (frame_index, energy / reference)
        styles[f"{i} read back"] = {"color": f"C{i}", "marker": "."}
        if true_energy is not None:
            series[f"{i} true"] = (frame_index, np.asarray(true_energy[i]) / reference)
            styles[f"{i} true"] = {"color": f"C{i}", "linestyle": "--"}
    if reference_frames is not None:
        reference_state = read_state(np.asarray(reference_frames), system, dt, t0=t0)
        for i, energy in enumerate(reference_state.energy):
            finite = energy[np.isfinite(energy)]
            label = f"_real {i}" if i else "real sequences"  # "_": one legend entry
            series[label] = (np.arange(len(energy)), energy / (finite.mean() if finite.size
                                                               else 1.0))
            styles[label] = {"color": "0.55", "linestyle": "--", "linewidth": 1}
    curve = plots.line_plot(
        out_dir / f"{stem}_energy.png", series, xlabel="frame", ylabel="E / mean E (true)",
        title=f"{system.name}: the true energy read back from the frames", styles=styles)
    return tracks, curve
