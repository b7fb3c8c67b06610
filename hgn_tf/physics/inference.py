"""The true dynamics' best prediction from the frames a model read: the prediction floor.

A model that reads the first K frames of a sequence and predicts the rest sees the noisy
positions q_noisy[0:K] (the frames are rendered from them; the momenta are not drawn) and nothing
else. Every later frame is rendered from its own noisy position, q(t) + sigma eps_t, with noise
no model can know. With the true dynamics known, the best it can do under pixel MSE is the
expected frame given what it read (the mean minimises the squared error):

    u ~ prior,  x0 = (q0, p0) = to_state(u)      the system's sampler (`initial_parametrisation`)
    q(t; u) = the true flow from x0,   y_k = q_noisy[k] = q(t_k; u) + sigma eps_k
    posterior      pi(u | y) ∝ prior(u) prod_{k<K} N(y_k; q(t_k; u), sigma^2 I)
    floor frame    render(y_t)                                      t < K (the frame read)
                   E_{u ~ pi, eps ~ N(0, I)}[ render(q(t; u) + sigma eps) ]    t >= K

scored like a model's rollout. (The frames read are known exactly, the later ones only up to their
noise: so the floor's per-frame error steps up after frame K - 1 even with the true dynamics.)

The variables u are those the sampler draws: (q0, p0) itself with its density for the systems
drawn uniformly on a phase-space shell (`sample_phase_sphere`); (r, theta, jitter) for the
n-body systems, whose states lie on a lower-dimensional set (the bodies start on a circle about
the origin). Computed per sequence:

  1. The best fit: u_fit = argmin sum_k |q(t_k; u) - y_k|^2 / sigma^2 + |u_g|^2 (u_g: the
     variables with a N(0, 1) prior; the others are bounded by their flat prior's support), by
     `scipy.optimize.least_squares` on all sequences at once (one batched simulation per
     evaluation; the Jacobian is block diagonal, declared by `jac_sparsity`, so finite differences
     cost size + 1 simulations per iteration whatever the number of sequences). Start: a quadratic
     fit of each coordinate over the K frames gives q(t_0) and dq/dt(t_0), p = `momenta`, and the
     parametrisation's `guess` maps that state to u.
  2. Laplace proposal: N(u_fit, (J^T J)^-1) with J the Jacobian of the whitened residuals
     (the prior's rows included) at u_fit.
  3. Self-normalised importance sampling of the exact posterior: n draws from the proposal
     (widened, and truncated to the prior's support), each weighted by prior x likelihood (exact,
     from the same simulation) / proposal. Each draw's later positions get their own noise draw,
     so the weighted mean of the rendered frames estimates the expectation over both. A draw
     whose simulation fails (a near-collision of two bodies) gets weight 0.

The rejection of sequences whose discs leave the canvas (`generate`, step 5) truncates the prior
slightly; it is ignored.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize
import scipy.sparse
import scipy.stats

from hgn_tf.errors import DataError
from hgn_tf.physics.base import InitialParametrisation, PhysicalSystem
from hgn_tf.physics.generate import render_states

__all__ = ["fit_initial_states", "has_prior", "posterior_frames"]


def has_prior(system: PhysicalSystem) -> bool:
    """Whether the system's initial-state sampler is known as a map from variables with a
    density (`PhysicalSystem.initial_parametrisation`), which the posterior needs."""
    return system.initial_parametrisation() is not None


def _parametrisation(system: PhysicalSystem) -> InitialParametrisation:
    param = system.initial_parametrisation()
    if param is None:
        raise DataError(f"The prediction floor needs the density of the initial states; "
                        f"system={system.name!r} does not define `initial_parametrisation`.",
                        "system")
    return param


def _check_observations(system: PhysicalSystem, q_obs, times) -> tuple[np.ndarray, np.ndarray]:
    q_obs = np.asarray(q_obs, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if q_obs.ndim != 3 or q_obs.shape[-1] != system.dim or q_obs.shape[1] < 2:
        raise DataError(f"q_obs must have shape [N, K >= 2, dim={system.dim}], got {q_obs.shape}.",
                        "q_obs")
    if times.shape != (q_obs.shape[1],) or np.any(np.diff(times) <= 0):
        raise DataError(f"times must be {q_obs.shape[1]} strictly increasing times (one per "
                        f"observed frame), got {times!r}.", "times")
    if not system.noise_std > 0:
        raise DataError(f"{system.name}: the posterior needs noise_std > 0, got "
                        f"{system.noise_std}.", "noise_std")
    return q_obs, times


def fit_initial_states(system: PhysicalSystem, q_obs, times) -> dict:
    """The best-fit initial states given noisy positions (step 1 of the module doc).

    Args:
      system: the true system; its `noise_std` is the observation noise.
      q_obs: observed noisy coordinates [N, K, dim] (K >= 2), continuous in time: angles
        unwrapped along each sequence (the datasets' `q_noisy` are; `physics.readback`'s angles
        come back in (-pi, pi] and need `np.unwrap` first).
      times: the K observation times; the states are those at times[0].

    Returns:
      {"u": [N, size] the fitted variables, "x": [N, 2 dim] their state (q0, p0),
       "jacobian": [N, rows, size] of the whitened residuals (data rows, then prior rows),
       "chi2": [N] the data residuals' sum of squares (about K dim - size for a good fit)}.

    Raises:
      DataError: bad shapes or times, no noise, or a system without `initial_parametrisation`.
    """
    param = _parametrisation(system)
    q_obs, times = _check_observations(system, q_obs, times)
    n, k, d = q_obs.shape
    dt = times - times[0]
    degree = min(2, k - 1)
    basis = np.stack([dt ** j for j in range(degree + 1)], axis=1)  # [K, degree + 1]
    coef = np.linalg.lstsq(basis, q_obs.transpose(1, 0, 2).reshape(k, n * d), rcond=None)[0]
    q0 = coef[0].reshape(n, d)
    p0 = system.momenta(q0, coef[1].reshape(n, d), times[0])
    m = param.size
    u0 = np.clip(param.guess(q0, p0), param.lower, param.upper)
    gauss = list(param.standard_normal)
    sigma = system.noise_std

    def residuals(flat):
        u = flat.reshape(n, m)
        q, _ = system.simulate(*param.to_state(u), times)
        return np.concatenate([((q - q_obs) / sigma).reshape(n, k * d), u[:, gauss]],
                              axis=1).reshape(-1)

    rows = k * d + len(gauss)
    sparsity = scipy.sparse.block_diag([np.ones((rows, m))] * n)
    res = scipy.optimize.least_squares(
        residuals, u0.reshape(-1), jac_sparsity=sparsity, method="trf", x_scale="jac",
        bounds=(np.tile(param.lower, n), np.tile(param.upper, n)))
    jac = res.jac.toarray() if scipy.sparse.issparse(res.jac) else np.asarray(res.jac)
    blocks = np.stack([jac[i * rows:(i + 1) * rows, i * m:(i + 1) * m] for i in range(n)])
    chi2 = (res.fun.reshape(n, rows)[:, :k * d] ** 2).sum(axis=1)
    u = res.x.reshape(n, m)
    return {"u": u, "x": np.concatenate(param.to_state(u), axis=1), "jacobian": blocks,
            "chi2": chi2}


PROPOSAL_WIDTH = 1.5  # the Laplace proposal's standard deviations, widened (safer weights)
MAX_DRAW_ROUNDS = 100


def _draw(param: InitialParametrisation, u_fit, jacobian, n: int, rng,
          name: str) -> tuple[np.ndarray, np.ndarray]:
    """n draws from the Laplace proposal N(u_fit, w^2 (J^T J)^-1), w = PROPOSAL_WIDTH, truncated
    to the prior's support, and their log proposal densities (up to the truncation's normalising
    constant, which self-normalised weights do not see)."""
    # (J^T J)^-1 by the pseudo-inverse: finite even when K frames leave a direction undetermined.
    cov = np.linalg.pinv(jacobian.T @ jacobian) * PROPOSAL_WIDTH ** 2
    proposal = scipy.stats.multivariate_normal(u_fit, (cov + cov.T) / 2, allow_singular=True)
    kept = []
    for _ in range(MAX_DRAW_ROUNDS):
        u = proposal.rvs(size=4 * n, random_state=rng).reshape(4 * n, param.size)
        kept.append(u[np.isfinite(param.log_prior(u))])
        if sum(len(k) for k in kept) >= n:
            u = np.concatenate(kept)[:n]
            return u, np.asarray(proposal.logpdf(u)).reshape(n)
    raise RuntimeError(f"{name}: fewer than {n} of {4 * n * MAX_DRAW_ROUNDS} draws around the "
                       f"fitted variables {u_fit} fall where the initial states are drawn; the "
                       "observations are not from this system's sampler.")


def _simulate_or_nan(system: PhysicalSystem, q0, p0, times) -> np.ndarray:
    """q [N, T, dim] of each trajectory, NaN for those whose simulation fails (a step size
    underflow at a near-collision), found by halving the batch."""
    try:
        return system.simulate(q0, p0, times)[0]
    except RuntimeError:
        if len(q0) == 1:
            return np.full((1, len(times), system.dim), np.nan)
        h = len(q0) // 2
        return np.concatenate([_simulate_or_nan(system, q0[:h], p0[:h], times),
                               _simulate_or_nan(system, q0[h:], p0[h:], times)])


def posterior_frames(system: PhysicalSystem, q_obs, times, *, frames_read: int, n_samples: int,
                     seed: int, resolution: int = 32, chunk: int = 16) -> dict:
    """The floor frames at every time in `times` given the noisy positions of the first
    `frames_read` frames (the module doc's: those frames themselves, then the expected frames),
    and the best-fit state's sharp rollout.

    Args:
      system: the true system (its `noise_std` is the observation noise).
      q_obs: noisy coordinates [N, >= frames_read, dim]; only the first `frames_read` are used.
      times: all T frame times [T]; frames_read < T.
      frames_read: K, how many frames the predictor reads.
      n_samples: importance samples per sequence.
      seed: the draws' seed.
      resolution: frame size.
      chunk: sequences per batch of rendering (memory: chunk x n_samples x T frames).

    Returns:
      {"frames": float32 [N, T, R, R, 3] in [0, 1], the floor frames;
       "fit_q": [N, T, dim], the best-fit state's rollout (step 1); "chi2": [N];
       "ess": [N], each sequence's effective sample size (sum w)^2 / sum w^2}.

    Raises:
      DataError: a system without `initial_parametrisation`, or a bad `frames_read` /
        `n_samples`.
    """
    times = np.asarray(times, dtype=np.float64)
    q_obs = np.asarray(q_obs, dtype=np.float64)
    if not (isinstance(frames_read, (int, np.integer)) and 2 <= frames_read < times.size):
        raise DataError(f"frames_read must be an int in [2, {times.size - 1}] (at least one frame "
                        f"left to predict), got {frames_read!r}.", "frames_read")
    param = _parametrisation(system)
    if not (isinstance(n_samples, (int, np.integer)) and n_samples >= 1):
        raise DataError(f"n_samples must be an int >= 1, got {n_samples!r}.", "n_samples")
    obs = q_obs[:, :frames_read]
    fit = fit_initial_states(system, obs, times[:frames_read])
    n, d = obs.shape[0], system.dim
    fit_q, _ = system.simulate(fit["x"][:, :d], fit["x"][:, d:], times)
    rng = np.random.default_rng(seed)
    sigma = system.noise_std
    out = np.empty((n, times.size, resolution, resolution, 3), np.float32)
    ess = np.empty(n)
    for start in range(0, n, chunk):
        rows = range(start, min(start + chunk, n))
        draws, log_q = [], []
        for i in rows:
            u, lq = _draw(param, fit["u"][i], fit["jacobian"][i], n_samples, rng, system.name)
            draws.append(u)
            log_q.append(lq)
        u = np.concatenate(draws)  # [rows * S, size]
        q = _simulate_or_nan(system, *param.to_state(u), times)
        m = len(rows)
        q = q.reshape(m, n_samples, times.size, d)
        resid = (q[:, :, :frames_read] - obs[rows.start:rows.stop, None]) / sigma
        log_w = -0.5 * (resid ** 2).sum(axis=(2, 3)) - np.stack(log_q)
        # The prior is finite on every draw: `_draw` kept those.
        log_w = log_w + param.log_prior(u).reshape(m, n_samples)
        failed = np.isnan(q).any(axis=(2, 3))
        log_w = np.where(failed, -np.inf, log_w)
        if failed.all(axis=1).any():
            raise RuntimeError(f"{system.name}: every draw of sequence "
                               f"{rows.start + int(np.argmax(failed.all(axis=1)))} failed to "
                               "simulate; raise n_samples or check the observations.")
        q = np.where(failed[:, :, None, None], 0.0, q)  # rendered with weight 0
        q = q[:, :, frames_read:] + sigma * rng.standard_normal(q[:, :, frames_read:].shape)
        log_w = log_w - log_w.max(axis=1, keepdims=True)
        w = np.exp(log_w)
        w /= w.sum(axis=1, keepdims=True)
        ess[rows.start:rows.stop] = 1.0 / (w ** 2).sum(axis=1)
        later = times.size - frames_read
        pictures = render_states(system, q.reshape(m * n_samples, later, d), resolution)
        pictures = pictures.reshape(m, n_samples, later, resolution, resolution, 3)
        mean = np.zeros((m, later, resolution, resolution, 3), np.float32)
        for s in range(n_samples):  # one draw at a time: the float copy of all is large
            mean += w[:, s, None, None, None, None].astype(np.float32) * pictures[:, s]
        out[rows.start:rows.stop, frames_read:] = mean / np.float32(255)
    # The frames read, as they were read.
    out[:, :frames_read] = render_states(system, obs, resolution) / np.float32(255)
    return {"frames": out, "fit_q": fit_q, "chi2": fit["chi2"], "ess": ess}
