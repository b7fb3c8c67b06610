"""Rollouts of a learned vector field against the truth (the HNN notebooks' protocol, fixed).

From `n_states` (15) initial states x0 (`Task.eval_initial_states`: the official notebooks' own
states, or the task's own sampler on split "eval"), the true field and each learned
field are integrated over the task's evaluation span (spring, pendulum, damped spring: [0, 20]
at 100 points; two_body [0, 25], three_body [0, 3] at 500 points), and per initial state

    state MSE   = mean_{t, i} (x_model(t)_i - x_true(t)_i)^2
    energy MSE  = mean_t (E(x_model(t)) - E(x_true(t)))^2,   E = the task's TRUE energy

(the official pendulum notebook scored q^2 + p^2 instead of the pendulum's H; here E is always
the system's Hamiltonian, or the damped spring's mechanical energy). Reported: the mean over the
15 states and the notebooks' error bar, the std of the means of 5 groups of 3 / sqrt(5).

Two solvers, both at rtol = atol = 1e-12 (the spring and pendulum notebooks' rtol; the two- and
three-body notebooks integrate at 1e-9 through their `get_orbit`; all left atol at scipy's 1e-6):

    "solve_ivp" (default)  `scipy.integrate.solve_ivp(method=...)` once per initial state, as the
                           official notebooks do it, `t_eval` = the evaluation times; the learned
                           field is called on one state [1, d] per evaluation (a `tf.function`).
                           `method` "DOP853" (default: order 8, the cheapest at this tolerance)
                           or "RK45" (the notebooks' default method; ~5-10x more field calls
                           at rtol 1e-12).
    "batched"              the DOP853 tableau of solve_ivp re-implemented in `hgn_tf.physics.ode`,
                           one adaptive step size per trajectory as one solve_ivp call per state
                           would have it, but the states evaluated in one batch per stage (one
                           field call for all of them): the same method, other step sequences
                           (the error estimate is per trajectory either way), far fewer Python
                           calls. `hgn baselines pixel-hnn` uses it.

A learned field that blows up (the step size underflows, or more than `max_steps` steps) leaves
its trajectory NaN from the start: it is counted in `diverged` and makes the mean infinite rather
than being dropped.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.integrate import solve_ivp

from hgn_tf import metrics
from hgn_tf.baselines.tasks import Task
from hgn_tf.errors import check
from hgn_tf.physics import ode

__all__ = ["EVAL_RTOL", "IVP_METHODS", "N_STATES", "SOLVERS", "evaluate_fields", "rollout_field"]

EVAL_RTOL = 1e-12
N_STATES = 15
SOLVERS = ("solve_ivp", "batched")
IVP_METHODS = ("DOP853", "RK45")
_MAX_STEPS = 20_000
# Field evaluations per step (first-same-as-last aside): DOP853 12, RK45 6.
_EVALS_PER_STEP = {"DOP853": 12, "RK45": 6}

Field = Callable[[np.ndarray], np.ndarray]


class _TooManySteps(Exception):
    pass


def _solve_ivp_one(field: Field, x0: np.ndarray, times: np.ndarray, method: str,
                   max_steps: int) -> np.ndarray:
    """[T, d]: one `solve_ivp` call from x0 [d]; NaN if it fails or passes `max_steps` steps."""
    budget = max_steps * _EVALS_PER_STEP[method]
    calls = 0

    def rhs(t, y):
        nonlocal calls
        calls += 1
        if calls > budget:
            raise _TooManySteps
        return field(y[None])[0]

    try:
        sol = solve_ivp(rhs, (times[0], times[-1]), x0, method=method, t_eval=times,
                        rtol=EVAL_RTOL, atol=EVAL_RTOL)
    except _TooManySteps:
        return np.full((len(times), len(x0)), np.nan)
    if sol.status != 0 or sol.y.shape[1] != len(times):
        return np.full((len(times), len(x0)), np.nan)
    return sol.y.T


def rollout_field(field: Field, x0, times, *, solver: str = "solve_ivp", method: str = "DOP853",
                  max_steps: int = _MAX_STEPS) -> np.ndarray:
    """Trajectories [N, T, d] of dx/dt = field(x) from x0 [N, d] at times[0] (NaN: diverged).

    `field` maps states [M, d] to derivatives [M, d] (NumPy, float64); `solver` and `method`:
    see the module docstring.
    """
    check(solver in SOLVERS, "solver", solver, f"one of {SOLVERS}")
    check(method in IVP_METHODS, "method", method, f"one of {IVP_METHODS}")
    x0 = np.asarray(x0, np.float64)
    times = np.asarray(times, np.float64)
    if solver == "solve_ivp":
        return np.stack([_solve_ivp_one(field, x, times, method, max_steps) for x in x0])

    def rhs(t, y):
        return field(y)

    try:
        return ode.integrate(rhs, x0, times, rtol=EVAL_RTOL, atol=EVAL_RTOL,
                             max_steps=max_steps)
    except RuntimeError:  # one at a time, so one diverging trajectory costs only itself
        out = np.full((len(x0), len(times), x0.shape[1]), np.nan)
        for i in range(len(x0)):
            try:
                out[i] = ode.integrate(rhs, x0[i : i + 1], times, rtol=EVAL_RTOL,
                                       atol=EVAL_RTOL, max_steps=max_steps)[0]
            except RuntimeError:
                pass
        return out


def _scores(task: Task, pred: np.ndarray, truth: np.ndarray, true_energy: np.ndarray) -> dict:
    diverged = ~np.isfinite(pred).all(axis=(1, 2))
    splits = 5 if len(pred) % 5 == 0 else len(pred)  # else std / sqrt(n)
    state = np.where(diverged, np.inf, metrics.state_mse(np.nan_to_num(pred), truth))
    energy = np.where(diverged, np.inf,
                      metrics.energy_mse(task.energy(np.nan_to_num(pred)), true_energy))
    def error_bar(values):
        return np.inf if diverged.any() else metrics.split_standard_error(values, splits)

    return {
        "state_mse": float(state.mean()),
        "state_mse_se": error_bar(state),
        "energy_mse": float(energy.mean()),
        "energy_mse_se": error_bar(energy),
        "diverged": int(diverged.sum()),
        "per_state_energy_mse": energy.tolist(),
    }


def evaluate_fields(task: Task, fields: dict[str, Field], *, n_states: int = N_STATES,
                    seed: int = 0, solver: str = "solve_ivp",
                    method: str = "DOP853") -> tuple[dict, dict]:
    """Scores each learned field against the truth from the same `n_states` initial states
    (`solver`, `method`: see `rollout_field`).

    Returns:
      (scores, rollouts): scores[name] = {"state_mse", "state_mse_se", "energy_mse",
      "energy_mse_se", "diverged", "per_state_energy_mse"}; rollouts = {"t": [T], "truth":
      [N, T, d], name: [N, T, d], ...} (for pictures).
    """
    x0 = task.eval_initial_states(n_states, seed)
    times = task.eval_times()
    truth = task.rollout(x0, times)
    true_energy = task.energy(truth)
    scores, rollouts = {}, {"t": times, "truth": truth}
    for name, field in fields.items():
        pred = rollout_field(field, x0, times, solver=solver, method=method)
        rollouts[name] = pred
        scores[name] = _scores(task, pred, truth, true_energy)
    return scores, rollouts
