"""Dormand-Prince 8(5,3) with one adaptive step size per trajectory, vectorised over a batch.

Why not `scipy.integrate.solve_ivp` on the flattened batch: its error norm is an RMS over *all*
components, so one shared step size serves the whole batch. Each trajectory then depends on its
batch-mates (at the 1e-11 level: enough to flip a float32 or uint8 rounding, which breaks the
bitwise "example i does not depend on how the dataset is chunked" guarantee of `generate`), the
RMS dilutes the error of the hardest trajectory by sqrt(batch size), and one close encounter in an
n-body batch slows every other trajectory down.

Here the same tableau as scipy's `DOP853` (Hairer, Norsett & Wanner, "Solving ODEs I", II.10;
coefficients read from `scipy.integrate.DOP853`) is stepped with a step size, an error estimate and
an accept/reject decision per trajectory. Every operation is elementwise along the batch axis (no
BLAS, no reduction across trajectories; the per-trajectory norms add the components one at a time in
a fixed order), so a trajectory's floating-point result is the same whatever batch it runs in.

One step of size h from (t, y), with k_1 = f(t, y):

    k_s   = f(t + c_s h, y + h sum_{j<s} a_sj k_j)            s = 2..12
    y_new = y + h sum_s b_s k_s                                 (8th order)
    k_13  = f(t + h, y_new)                                     (reused as the next k_1)
    e5    = h sum_s E5_s k_s / sc,  e3 = h sum_s E3_s k_s / sc,  sc = atol + rtol max(|y|, |y_new|)
    err   = |e5|^2 / sqrt(d (|e5|^2 + 0.01 |e3|^2))             (as in scipy; d = state size)

The step is accepted when err < 1; the next step size is h * clip(0.9 err^(-1/8), 0.2, 10).
Steps are shortened so that every trajectory lands exactly on each output time (no dense output).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.integrate import DOP853

__all__ = ["integrate"]

_A = np.asarray(DOP853.A, dtype=np.float64)
_B = np.asarray(DOP853.B, dtype=np.float64)
_C = np.asarray(DOP853.C, dtype=np.float64)
_E3 = np.asarray(DOP853.E3, dtype=np.float64)
_E5 = np.asarray(DOP853.E5, dtype=np.float64)
_N_STAGES = DOP853.n_stages  # 12
_ERROR_EXPONENT = -1.0 / (DOP853.error_estimator_order + 1)  # -1/8
_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0

Rhs = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _combine(coefficients: np.ndarray, stages: list[np.ndarray]) -> np.ndarray:
    """sum_j coefficients[j] * stages[j], elementwise and in a fixed order (skips zeros)."""
    total = np.zeros_like(stages[0])
    for c, k in zip(coefficients, stages):
        if c != 0.0:
            total += c * k
    return total


def _row_sum_of_squares(x: np.ndarray) -> np.ndarray:
    """sum_j x[:, j]^2, added column by column so each row's result is batch-independent."""
    total = np.zeros(x.shape[0])
    for j in range(x.shape[1]):
        total += x[:, j] * x[:, j]
    return total


def _initial_step(rhs: Rhs, t, y, f, max_step, rtol, atol) -> np.ndarray:
    """Hairer's starting-step heuristic (Solving ODEs I, II.4), one value per row."""
    d = y.shape[1]
    scale = atol + rtol * np.abs(y)
    d0 = np.sqrt(_row_sum_of_squares(y / scale) / d)
    d1 = np.sqrt(_row_sum_of_squares(f / scale) / d)
    h0 = np.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / np.maximum(d1, 1e-300))
    h0 = np.minimum(h0, max_step)
    f1 = rhs(t + h0, y + h0[:, None] * f)
    d2 = np.sqrt(_row_sum_of_squares((f1 - f) / scale) / d) / h0
    d12 = np.maximum(d1, d2)
    h1 = np.where(
        d12 <= 1e-15,
        np.maximum(1e-6, h0 * 1e-3),
        (0.01 / np.maximum(d12, 1e-300)) ** (1.0 / 8.0),
    )
    return np.minimum(np.minimum(100 * h0, h1), max_step)


def _step(rhs: Rhs, t, y, f, h, rtol, atol):
    """One DOP853 step per row; returns (y_new, f_new, err) with err < 1 meaning accept."""
    hc = h[:, None]
    stages = [f]
    for s in range(1, _N_STAGES):
        dy = _combine(_A[s, :s], stages)
        stages.append(rhs(t + _C[s] * h, y + hc * dy))
    y_new = y + hc * _combine(_B, stages)
    f_new = rhs(t + h, y_new)
    stages.append(f_new)
    scale = atol + rtol * np.maximum(np.abs(y), np.abs(y_new))
    e5 = _row_sum_of_squares(_combine(_E5, stages) / scale)
    e3 = _row_sum_of_squares(_combine(_E3, stages) / scale)
    denominator = np.sqrt((e5 + 0.01 * e3) * y.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.where(denominator > 0, np.abs(h) * e5 / denominator, 0.0)
    return y_new, f_new, err


def integrate(
    rhs: Rhs,
    y0: np.ndarray,
    times: np.ndarray,
    *,
    rtol: float,
    atol: float,
    max_steps: int = 100_000,
) -> np.ndarray:
    """Integrates dy/dt = rhs(t, y) for a batch of independent trajectories.

    Args:
      rhs: function (t [M], y [M, d]) -> dy/dt [M, d], elementwise along the batch axis.
      y0: initial states [M, d] at time times[0].
      times: strictly increasing output times [T].
      rtol, atol: relative and absolute tolerances of the per-trajectory error control.
      max_steps: bound on the number of (accepted or rejected) steps of the slowest trajectory.

    Returns:
      float64 [M, T, d]: the state of every trajectory at every output time (y0 at times[0]).

    Raises:
      RuntimeError: a trajectory needed more than `max_steps` steps or its step size underflowed
        (a singularity, e.g. an n-body collision).
    """
    y0 = np.array(y0, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    n_rows, d = y0.shape
    out = np.empty((n_rows, times.size, d))
    out[:, 0] = y0
    if times.size == 1 or n_rows == 0:
        return out
    rows = np.arange(n_rows)
    t = np.full(n_rows, times[0])
    y = y0
    f = rhs(t, y)
    h = _initial_step(rhs, t, y, f, times[1] - times[0], rtol, atol)
    next_index = np.ones(n_rows, dtype=np.int64)
    for _ in range(max_steps):
        target = times[next_index]
        remaining = target - t
        hits = h >= remaining
        h_try = np.where(hits, remaining, h)
        y_new, f_new, err = _step(rhs, t, y, f, h_try, rtol, atol)
        accept = err < 1.0
        with np.errstate(divide="ignore"):
            factor = np.where(
                err == 0.0,
                _MAX_FACTOR,
                np.clip(_SAFETY * err**_ERROR_EXPONENT, _MIN_FACTOR, _MAX_FACTOR),
            )
        h_next = h_try * factor
        # A step shortened to land on an output time says little about the natural step size.
        h = np.where(accept & hits, np.maximum(h_next, h), h_next)
        if np.any(h < 1e-12 * np.maximum(np.abs(t), 1.0)):
            raise RuntimeError(
                "ODE step size underflowed (a singularity, e.g. a collision) in trajectory "
                f"{int(rows[np.argmin(h)])} near t={float(t[np.argmin(h)]):.6g}."
            )
        t = np.where(accept, np.where(hits, target, t + h_try), t)
        y = np.where(accept[:, None], y_new, y)
        f = np.where(accept[:, None], f_new, f)
        landed = accept & hits
        out[rows[landed], next_index[landed]] = y[landed]
        next_index = next_index + landed
        keep = next_index < times.size
        if not keep.all():
            rows, t, y, f, h, next_index = (a[keep] for a in (rows, t, y, f, h, next_index))
            if rows.size == 0:
                return out
    raise RuntimeError(f"ODE integration needed more than max_steps={max_steps} steps.")
