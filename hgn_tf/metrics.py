"""The measurements every model family and every experiment table shares: pure numpy functions.

Frames are float arrays [N, T, H, W, C] in [0, 1] (N sequences of T frames); energies are [N, T].
Nothing here imports a model: `hgn_tf.evaluate` (and the experiment tables) roll models out and
call these.

    per_frame_mse(pred, truth)              [N, T]   mean over pixels and channels of (pred-truth)^2
    sequence_mse(pred, truth, window)       [N]      per_frame_mse averaged over the frames in
                                                     `window` (HGN Table 1 averages it over the
                                                     30-step unroll and over sequences, x1e4)
    mean_frame_mse(truth, mean_frame, w)    [N]      the baseline that predicts one frame (the mean
                                                     training frame) everywhere
    repeat_frame_mse(truth, anchor, w)      [N]      the baseline that repeats frame `anchor` (the
                                                     last frame the encoder read)
    valid_prediction_time(pred, truth)      [N]      frames before the first whose MSE /
                                                     mean(truth^2) exceeds 0.025 (Botev et al.
                                                     2021); T when none does
    energy_variance(energy)                 [N]      Var_t H(q_t, p_t) (HGN Table 2, x1e4)
    energy_drift(energy, scale)             [N]      max_t |H_t - H_0| / scale
    state_mse(pred, truth)                  [N]      mean over time and coordinates of the
                                                     squared error of state trajectories [N, T, d]
    energy_mse(energy, true_energy)         [N]      mean over time of (E_t - E_true_t)^2
    split_standard_error(values, splits)    float    std of the means of `splits` equal parts /
                                                     sqrt(splits) (the HNN notebooks' error bar)
    summary(values)                         dict     mean, std, median, n of per-sequence values
    frame_errors(pred, truth, ...)          dict     the [N, T] errors of the model and of both
                                                     baselines, computed once
    window_report(errors, window)           dict     the model beside the baselines over a window

A `window` is a `slice` over the frame axis (None: every frame), so "the frames the encoder read"
and "the frames after them" are scored by the same functions.
"""

from __future__ import annotations

import numpy as np

from hgn_tf.errors import DataError

__all__ = [
    "VPT_THRESHOLD",
    "energy_drift",
    "energy_mse",
    "energy_variance",
    "frame_errors",
    "mean_frame_mse",
    "per_frame_mse",
    "repeat_frame_mse",
    "sequence_mse",
    "split_standard_error",
    "state_mse",
    "summary",
    "valid_prediction_time",
    "window_report",
]

VPT_THRESHOLD = 0.025


def _frames(name: str, x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 5:
        raise DataError(f"`{name}` must be frames [N, T, H, W, C], got shape {list(x.shape)}.",
                        name)
    return x


def _same_shape(pred: np.ndarray, truth: np.ndarray) -> None:
    if pred.shape != truth.shape:
        raise DataError(f"`pred` and `truth` must have the same shape, got {list(pred.shape)} and "
                        f"{list(truth.shape)}.", "pred")


def per_frame_mse(pred, truth) -> np.ndarray:
    """[N, T]: the mean squared pixel error of each frame (accumulated in float64)."""
    pred, truth = _frames("pred", pred), _frames("truth", truth)
    _same_shape(pred, truth)
    diff = np.subtract(pred, truth, dtype=np.result_type(pred.dtype, truth.dtype, np.float32))
    return np.mean(np.square(diff), axis=(2, 3, 4), dtype=np.float64)


def _window_mean(err: np.ndarray, window: slice | None) -> np.ndarray:
    part = err[:, window] if window is not None else err
    if part.shape[1] == 0:
        raise DataError(f"`window` {window} selects no frame of {err.shape[1]}.", "window")
    return part.mean(axis=1)


def sequence_mse(pred, truth, window: slice | None = None) -> np.ndarray:
    """[N]: each sequence's pixel MSE over the frames in `window` (None: all)."""
    return _window_mean(per_frame_mse(pred, truth), window)


def _mean_frame_errors(truth: np.ndarray, mean_frame) -> np.ndarray:
    mean_frame = np.asarray(mean_frame, truth.dtype).reshape(truth.shape[2:])
    return per_frame_mse(np.broadcast_to(mean_frame, truth.shape), truth)


def _repeat_frame_errors(truth: np.ndarray, anchor: int) -> np.ndarray:
    if not 0 <= anchor < truth.shape[1]:
        raise DataError(f"`anchor` must be a frame index in [0, {truth.shape[1]}), got {anchor}.",
                        "anchor")
    return per_frame_mse(np.broadcast_to(truth[:, anchor : anchor + 1], truth.shape), truth)


def mean_frame_mse(truth, mean_frame, window: slice | None = None) -> np.ndarray:
    """[N]: the pixel MSE of predicting `mean_frame` [H, W, C] at every frame of `window`."""
    return _window_mean(_mean_frame_errors(_frames("truth", truth), mean_frame), window)


def repeat_frame_mse(truth, anchor: int, window: slice | None = None) -> np.ndarray:
    """[N]: the pixel MSE of repeating frame `anchor` of each sequence over `window`."""
    return _window_mean(_repeat_frame_errors(_frames("truth", truth), anchor), window)


def valid_prediction_time(pred, truth, threshold: float = VPT_THRESHOLD, *,
                          errors: np.ndarray | None = None) -> np.ndarray:
    """[N]: the index of the first frame with MSE / mean(truth^2) > `threshold` (T if none).

    DeepMind's benchmark (Botev et al. 2021): a frame counts as valid while its error is below
    2.5% of the true frame's power. A rollout wrong from its first frame scores 0. `errors`:
    `per_frame_mse(pred, truth)` if already computed.
    """
    err = per_frame_mse(pred, truth) if errors is None else errors
    power = np.mean(np.square(_frames("truth", truth)), axis=(2, 3, 4), dtype=np.float64)
    invalid = err / np.maximum(power, 1e-12) > threshold
    return np.where(invalid.any(axis=1), invalid.argmax(axis=1), err.shape[1])


def _energies(energy) -> np.ndarray:
    energy = np.asarray(energy, np.float64)
    if energy.ndim != 2:
        raise DataError(f"`energy` must be [N, T], got shape {list(energy.shape)}.", "energy")
    return energy


def energy_variance(energy) -> np.ndarray:
    """[N]: the variance over time of each sequence's energy (HGN Table 2 averages it)."""
    return _energies(energy).var(axis=1)


def energy_drift(energy, scale: float = 1.0) -> np.ndarray:
    """[N]: max_t |H_t - H_0| / scale (pass a scale that cannot vanish, e.g. the spread of H)."""
    energy = _energies(energy)
    if not np.isfinite(scale) or scale <= 0:
        raise DataError(f"`scale` must be a finite number > 0, got {scale!r}.", "scale")
    return np.abs(energy - energy[:, :1]).max(axis=1) / scale


def state_mse(pred, truth) -> np.ndarray:
    """[N]: mean over time and coordinates of (pred - truth)^2 for trajectories [N, T, d]."""
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    if pred.ndim != 3:
        raise DataError(f"`pred` must be trajectories [N, T, d], got shape {list(pred.shape)}.",
                        "pred")
    _same_shape(pred, truth)
    return np.mean(np.square(pred - truth), axis=(1, 2))


def energy_mse(energy, true_energy) -> np.ndarray:
    """[N]: mean over time of (energy - true_energy)^2, both [N, T]."""
    energy, true_energy = _energies(energy), _energies(true_energy)
    _same_shape(energy, true_energy)
    return np.mean(np.square(energy - true_energy), axis=1)


def split_standard_error(values, splits: int = 5) -> float:
    """std of the means of `splits` equal consecutive parts of `values`, / sqrt(splits).

    The error bar of the HNN paper's notebooks (`bootstrap_conf`): 15 values -> 5 means of 3.
    """
    values = np.asarray(values, np.float64).ravel()
    if splits < 2 or values.size % splits:
        raise DataError(f"`splits` must be >= 2 and divide the {values.size} values, got "
                        f"{splits}.", "splits")
    return float(np.std(values.reshape(splits, -1).mean(axis=1)) / np.sqrt(splits))


def summary(values) -> dict:
    """{"mean", "std", "median", "n"} of per-sequence values."""
    values = np.asarray(values, np.float64).ravel()
    if values.size == 0:
        raise DataError("`values` is empty: nothing to summarise.", "values")
    return {"mean": float(values.mean()), "std": float(values.std()),
            "median": float(np.median(values)), "n": int(values.size)}


def frame_errors(pred, truth, *, mean_frame, anchor: int) -> dict:
    """The [N, T] per-frame errors of the model and of the two baselines, each computed once.

    Returns:
      {"model": per_frame_mse(pred, truth), "mean_frame": the errors of predicting `mean_frame`
       [H, W, C] everywhere, "repeat_last": the errors of repeating frame `anchor`}.
    """
    truth = _frames("truth", truth)
    return {
        "model": per_frame_mse(pred, truth),
        "mean_frame": _mean_frame_errors(truth, mean_frame),
        "repeat_last": _repeat_frame_errors(truth, anchor),
    }


def window_report(errors: dict, window: slice | None = None) -> dict:
    """The model's pixel MSE over `window` beside the two baselines, as plain floats.

    Args:
      errors: `frame_errors(...)`.
      window: a slice of frames (None: all).
    Returns:
      {"pixel_mse", "pixel_mse_std", "baseline_mean_frame_mse", "baseline_repeat_last_mse",
       "ratio_to_mean_frame", "n_frames"}: means over sequences; the ratio is model / mean frame
      (below 1 beats it).
    """
    model = summary(_window_mean(errors["model"], window))
    mean_frame_err = float(_window_mean(errors["mean_frame"], window).mean())
    return {
        "pixel_mse": model["mean"],
        "pixel_mse_std": model["std"],
        "baseline_mean_frame_mse": mean_frame_err,
        "baseline_repeat_last_mse": float(_window_mean(errors["repeat_last"], window).mean()),
        "ratio_to_mean_frame": model["mean"] / max(mean_frame_err, 1e-12),
        "n_frames": len(range(errors["model"].shape[1])[window or slice(None)]),
    }
