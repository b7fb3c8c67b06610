"""The state-space tasks of Hamiltonian Neural Networks (Greydanus et al. 2019; seed 002).

A task is a physical system of `hgn_tf.physics` seen as a flat state x = (q, p) in R^(2 dim),
with the sampling protocol of the official code (greydanus/hamiltonian-nn, experiment-*/data.py):

    task           system (constants)                 trajectories x points  span     noise  split
    spring         mass_spring k=2, m=0.5: H=q^2+p^2   50 x 30               [0, 3]   0.1    50/50
    spring_unit    mass_spring k=m=1: H=(q^2+p^2)/2    50 x 30               [0, 3]   0.1    50/50
    pendulum       pendulum m=0.5,g=3,l=1:             50 x 45               [0, 3]   0.1    50/50
                   H = 3 (1 - cos q) + p^2
    two_body       two_body m=g=1, jitter 0.05         1000 x 50             [0, 20]  0      80/20
    three_body     three_body m=g=1, jitter 0.2        5000 x 20             [0, 5]   0      80/20
    damped_spring  damped_oscillator gamma=0.3,        50 x 30               [0, 3]   0.1    50/50
                   m=0.5, k=2, in mechanical variables

`spring` is the official code's Hamiltonian (the table's row); `spring_unit` is seed 002's text
(k = m = 1). The state is x = [q, p] (n-body: q = [x_1, y_1, x_2, y_2, ...], p likewise).
Initial states are the system's own sampler (`sample_initial`): r ~ U(radius_range) and a uniform
direction on the phase-space circle (the official code normalises a uniform point of the square,
which is not uniform in angle), and the n-body near-circular orbits with a per-component velocity
jitter (the official code scales the whole velocity by one factor 1 + 0.05 N(0, 1)).

Noise, as the official code: Gaussian noise of std `noise_std` on the stored x only; the stored
time derivatives dx/dt are the true vector field at the clean state.

The true vector field (`field`) is the system's `dynamics`: dq/dt = dH/dp, dp/dt = -dH/dq. The
damped spring ("real" spring of seed 002, section 4: m a + beta v + k x = 0, beta = m gamma) is not
autonomous in the Caldirola-Kanai canonical variables, so its task state is the mechanical one,
x = (q, p_mech) with p_mech = m dq/dt = exp(-gamma t) p_canonical:

    dq/dt = p_mech / m,   dp_mech/dt = -k q - gamma p_mech,    E = p_mech^2 / (2 m) + k q^2 / 2

which equals the system's canonical dynamics at t = 0 plus the friction term -gamma p_mech. Its
energy (`energy`) is the mechanical energy, which decays; every other task's is H.

Evaluation protocol (official notebooks): 15 initial states, rollouts over [0, 20] at 100 points
(two_body [0, 25], three_body [0, 3], at 500 points).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hgn_tf import physics
from hgn_tf.errors import DataError
from hgn_tf.physics import ode

__all__ = ["MAX_ATTEMPTS", "SPLIT_IDS", "TASK_NAMES", "Task", "get_task", "sample_split"]

SPLIT_IDS = {"train": 0, "test": 1, "eval": 2}
_RTOL = _ATOL = 1e-11
MAX_ATTEMPTS = 20


def _rng(seed: int, split: str, index: int, attempt: int) -> np.random.Generator:
    key = [seed, SPLIT_IDS[split], index] + ([attempt] if attempt else [])
    return np.random.default_rng(np.random.SeedSequence(key))


@dataclasses.dataclass(frozen=True)
class Task:
    """One HNN task: a system, its constants, the sampling protocol and the evaluation span.

    Attributes:
      name: registry name.
      system: the `hgn_tf.physics` system name.
      overrides: fields of the system replaced for this task (e.g. k=1, m=1).
      n_train, n_test: trajectories per split.
      n_points: points per trajectory, evenly spaced over `span` (both ends included).
      span: (t0, t1) of a training trajectory.
      noise_std: std of the Gaussian noise on the stored x (derivatives stay clean).
      steps, batch_size, weight_decay: the official training (batch_size None: full batch).
      eval_span, eval_points: the rollout of the evaluation.
      damped: the state is (q, mechanical momentum) of the damped oscillator (module docstring).
    """

    name: str
    system: str
    overrides: tuple[tuple[str, float], ...] = ()
    n_train: int = 25
    n_test: int = 25
    n_points: int = 30
    span: tuple[float, float] = (0.0, 3.0)
    noise_std: float = 0.1
    steps: int = 2000
    batch_size: int | None = None
    weight_decay: float = 1e-4
    eval_span: tuple[float, float] = (0.0, 20.0)
    eval_points: int = 100
    damped: bool = False

    @property
    def physical_system(self) -> physics.PhysicalSystem:
        return physics.get(self.system, **dict(self.overrides))

    @property
    def dim(self) -> int:
        """The size of q (x has 2 dim entries)."""
        return self.physical_system.dim

    def times(self) -> np.ndarray:
        return np.linspace(self.span[0], self.span[1], self.n_points)

    def eval_times(self) -> np.ndarray:
        return np.linspace(self.eval_span[0], self.eval_span[1], self.eval_points)

    def field(self, x) -> np.ndarray:
        """The true dx/dt [..., 2 dim] at states x [..., 2 dim] (float64)."""
        x = np.asarray(x, np.float64)
        system, n = self.physical_system, self.dim
        q, p = x[..., :n], x[..., n:]
        dq, dp = system.dynamics(q, p, np.zeros(x.shape[:-1]))
        if self.damped:  # at t = 0 canonical and mechanical momenta agree; add the friction
            dp = dp - system.gamma * p
        return np.concatenate([dq, dp], axis=-1)

    def energy(self, x) -> np.ndarray:
        """The true energy [...] of states x [..., 2 dim]: H, or the damped spring's mechanical
        energy (H of the undamped spring at t = 0)."""
        x = np.asarray(x, np.float64)
        n = self.dim
        return self.physical_system.hamiltonian(x[..., :n], x[..., n:], np.zeros(x.shape[:-1]))

    def initial_states(self, rng: np.random.Generator, n: int) -> np.ndarray:
        q0, p0 = self.physical_system.sample_initial(rng, n)
        return np.concatenate([q0, p0], axis=-1)

    def rollout(self, x0, times) -> np.ndarray:
        """The true trajectories [N, T, 2 dim] from x0 [N, 2 dim] at times[0] (DOP853, 1e-11)."""
        return ode.integrate(lambda t, y: self.field(y), np.asarray(x0, np.float64),
                             np.asarray(times, np.float64), rtol=_RTOL, atol=_ATOL)


_TASKS = {
    task.name: task
    for task in (
        Task("spring", "mass_spring"),
        Task("spring_unit", "mass_spring", overrides=(("k", 1.0), ("m", 1.0))),
        Task("pendulum", "pendulum", n_points=45),
        Task("two_body", "two_body", overrides=(("velocity_jitter", 0.05),), n_train=800,
             n_test=200, n_points=50, span=(0.0, 20.0), noise_std=0.0, steps=10_000,
             batch_size=200, weight_decay=0.0, eval_span=(0.0, 25.0), eval_points=500),
        Task("three_body", "three_body", overrides=(("velocity_jitter", 0.2),), n_train=4000,
             n_test=1000, n_points=20, span=(0.0, 5.0), noise_std=0.0, steps=10_000,
             batch_size=600, eval_span=(0.0, 3.0), eval_points=500),
        Task("damped_spring", "damped_oscillator", damped=True),
    )
}
TASK_NAMES: tuple[str, ...] = tuple(_TASKS)


def get_task(name: str, /, **changes) -> Task:
    """The task called `name`, with some fields replaced (e.g. steps=200, n_train=8).

    Raises:
      DataError: an unknown task name or field.
    """
    if name not in _TASKS:
        raise DataError(f"Unknown HNN task `task`={name!r}; allowed: {TASK_NAMES}.", "task")
    fields = {f.name for f in dataclasses.fields(Task)}
    unknown = sorted(set(changes) - fields)
    if unknown:
        raise DataError(f"`{unknown[0]}` is not a field of an HNN task; fields: "
                        f"{sorted(fields)}.", unknown[0])
    return dataclasses.replace(_TASKS[name], **changes)


def sample_split(task: Task, split: str, n: int | None = None, *, seed: int = 0) -> dict:
    """Trajectories of one split, each a pure function of (seed, split, index).

    Example i uses rng = default_rng(SeedSequence([seed, SPLIT_IDS[split], i])) for its initial
    state and then its noise. A trajectory whose integration fails (an n-body close encounter
    makes the step size underflow) is redrawn from SeedSequence([seed, split, i, attempt]).

    Returns:
      {"x": noisy states [n, T, 2 dim], "x_clean": [n, T, 2 dim], "dxdt": the true field at
       x_clean [n, T, 2 dim], "t": [T], "energy": true energy of x_clean [n, T]}, float64.
    """
    if split not in SPLIT_IDS:
        raise DataError(f"`split` must be one of {tuple(SPLIT_IDS)}, got {split!r}.", "split")
    n = {"train": task.n_train, "test": task.n_test}.get(split, 15) if n is None else n
    times = task.times()
    rngs = [_rng(seed, split, i, 0) for i in range(n)]
    x0 = np.concatenate([task.initial_states(rng, 1) for rng in rngs])
    try:
        clean = task.rollout(x0, times)
    except RuntimeError:  # a bad trajectory: integrate one at a time, redrawing the bad ones
        clean = np.empty((n, times.size, 2 * task.dim))
        for i in range(n):
            for attempt in range(MAX_ATTEMPTS):
                if attempt:
                    rngs[i] = _rng(seed, split, i, attempt)
                    x0[i] = task.initial_states(rngs[i], 1)[0]
                try:
                    clean[i] = task.rollout(x0[i : i + 1], times)[0]
                    break
                except RuntimeError:
                    continue
            else:
                raise RuntimeError(f"{task.name}: trajectory {i} of {split!r} failed "
                                   f"{MAX_ATTEMPTS} times.")
    noise = np.stack([rng.standard_normal((times.size, 2 * task.dim)) for rng in rngs])
    return {"x": clean + task.noise_std * noise, "x_clean": clean, "dxdt": task.field(clean),
            "t": times, "energy": task.energy(clean)}
