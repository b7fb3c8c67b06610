"""The state-space tasks of Hamiltonian Neural Networks (Greydanus et al. 2019; seed 002).

A task is a physical system of `hgn_tf.physics` seen as a flat state x = (q, p) in R^(2 dim),
with the sampling protocol of the official code (greydanus/hamiltonian-nn, experiment-*/data.py):

    task           system (constants)                 trajectories x points  span     noise  split
    spring         mass_spring k=2, m=0.5: H=q^2+p^2   50 x 30               [0, 3]   0.1    50/50
    spring_unit    mass_spring k=m=1: H=(q^2+p^2)/2    50 x 30               [0, 3]   0.1    50/50
    pendulum       pendulum m=0.5,g=3,l=1:             50 x 45               [0, 3]   0.1    50/50
                   H = 3 (1 - cos q) + p^2
    two_body       two_body m=g=1, official sampler    1000 x 50             [0, 20]  0      80/20
    three_body     three_body m=g=1, official sampler  5000 x 20             [0, 5]   0      80/20
    two_body_uniform, three_body_uniform: the same with the systems' own sampler
    damped_spring  damped_oscillator gamma=0.3,        50 x 30               [0, 3]   0.1    50/50
                   m=0.5, k=2, in mechanical variables

`spring` is the official code's Hamiltonian (the table's row); `spring_unit` is seed 002's text
(k = m = 1). The state is x = [q, p] (n-body: q = [x_1, y_1, x_2, y_2, ...], p likewise).
Initial states: spring, pendulum and the damped spring use the system's own sampler
(`sample_initial`): r ~ U(radius_range) and a uniform direction on the phase-space circle (the
official code normalises a uniform point of the square, which is not uniform in angle; for these
one-dimensional systems the difference is immaterial to the scores).

two_body and three_body draw their initial states as the official code does
(experiment-2body/data.py and experiment-3body/data.py, `random_config`), because the scores
depend on it (`sampler="official"`, `official_initial_states`):
  * two_body: body 1 at a position whose two coordinates are each U(0.5, 1.5) (the first
    quadrant only, r = |pos| in [0.71, 2.12]), body 2 opposite it; both on the circular orbit
    about their centre of mass, the velocity scaled by ONE factor 1 + 0.05 N(0, 1).
  * three_body: body 1 at radius r ~ U(0.9, 1.2) in the direction of a uniform point of the
    square [-1, 1]^2, the others rotated by 120 and 240 degrees; circular-orbit velocities, each
    COMPONENT scaled by 1 + 0.2 U(-1, 1); the total momentum is NOT removed (the centre of mass
    drifts).
The `_uniform` tasks use the systems' sampler instead (`hgn_tf.physics.nbody`: a uniform angle,
two_body r ~ U(0.5, 1.5); a Gaussian per-component velocity jitter, then the mean velocity
removed). The two protocols give different scores: the official two-body sampler leaves arcs of
the wide orbits out of the training window that the evaluation's longer span reaches (so the
baseline MLP, which has no conservation law, is scored partly off its data), and our three-body
jitter (Gaussian, std 0.2, with tails) gives about ten times more close encounters (closest
approach below 0.5 within the evaluation's [0, 3]: 10% of 300 states against 0.3%), where the
energy error of any learned field is large. `hgn baselines hnn`'s table reports both.

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
(two_body [0, 25], three_body [0, 3], at 500 points). Where the 15 states come from
(`eval_sampler`, `Task.eval_initial_states`):
  * "notebook" (the default of spring, spring_unit, pendulum, two_body and three_body): the
    notebooks' own states (`notebook_eval_states`). analyze-spring.ipynb and analyze-pend.ipynb
    draw x0 = U(-0.8, 0.8)^2, then 0.2 added away from zero on each coordinate, so |q|, |p| in
    [0.2, 1.0] and r = |x0| in [0.28, 1.41]. This is NOT the training distribution: the spring
    trains on r in [0.1, 1.0] (the evaluation reaches 41% past it), the pendulum on r in
    [1.3, 2.3] (the evaluation lies almost wholly inside the ring it trained on).
    analyze-2body / analyze-3body.ipynb score trial i from `np.random.seed(i); random_config()`,
    reproduced exactly.
  * "task" (the default of the `_uniform` tasks and the damped spring, which has no notebook):
    new states from the task's own training sampler (`initial_states`, split "eval").
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hgn_tf import physics
from hgn_tf.errors import DataError
from hgn_tf.physics import ode

__all__ = ["EVAL_SAMPLERS", "MAX_ATTEMPTS", "NOTEBOOK_SYSTEMS", "SAMPLERS", "SPLIT_IDS",
           "TASK_NAMES", "Task", "get_task", "notebook_eval_states", "official_initial_states",
           "sample_split"]

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
      sampler: "system" (the system's `sample_initial`) or "official" (the official code's
        `random_config`, two_body and three_body only: `official_initial_states`).
      eval_sampler: where the evaluation's initial states come from: "task" (`initial_states`)
        or "notebook" (the official notebooks' states, `notebook_eval_states`; for the tasks
        those notebooks score: spring, pendulum, and the n-body tasks on the official sampler).
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
    sampler: str = "system"
    eval_sampler: str = "task"

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise DataError(f"`sampler` must be one of {SAMPLERS}, got {self.sampler!r}.",
                            "sampler")
        if self.sampler == "official" and self.system not in _OFFICIAL:
            raise DataError(f"`sampler`='official' exists for {tuple(_OFFICIAL)}, not for "
                            f"system {self.system!r}.", "sampler")
        if self.eval_sampler not in EVAL_SAMPLERS:
            raise DataError(f"`eval_sampler` must be one of {EVAL_SAMPLERS}, got "
                            f"{self.eval_sampler!r}.", "eval_sampler")
        if self.eval_sampler == "notebook" and (
                self.system not in NOTEBOOK_SYSTEMS or self.damped
                or (self.system in _NOTEBOOK_NBODY and self.sampler != "official")):
            raise DataError(f"`eval_sampler`='notebook' exists for the tasks the official "
                            f"notebooks score (spring, pendulum, and the n-body tasks on the "
                            f"official sampler), not for {self.name!r}: use 'task'.",
                            "eval_sampler")

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
        if self.sampler == "official":
            return official_initial_states(self.system, rng, n)
        q0, p0 = self.physical_system.sample_initial(rng, n)
        return np.concatenate([q0, p0], axis=-1)

    def eval_initial_states(self, n: int, seed: int = 0) -> np.ndarray:
        """The evaluation's n initial states x0 [n, 2 dim], a pure function of (seed, n).

        "task": the clean first states of `sample_split(self, "eval", n, seed=seed)`.
        "notebook": the official notebooks' states (`notebook_eval_states`).
        """
        if self.eval_sampler == "notebook":
            return notebook_eval_states(self.system, n, seed)
        return sample_split(self, "eval", n, seed=seed)["x_clean"][:, 0]

    def rollout(self, x0, times) -> np.ndarray:
        """The true trajectories [N, T, 2 dim] from x0 [N, 2 dim] at times[0] (DOP853, 1e-11)."""
        return ode.integrate(lambda t, y: self.field(y), np.asarray(x0, np.float64),
                             np.asarray(times, np.float64), rtol=_RTOL, atol=_ATOL)


def _rotate(v, angle):
    """Rotate the 2-vectors v [..., 2] counter-clockwise by `angle`."""
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], axis=-1)


def _circular_velocity(system: str, pos) -> np.ndarray:
    """The velocity [n, 2] of a body at `pos` [n, 2] on a circular orbit about the origin (the
    centre of mass), counter-clockwise: the system's `circular_speed` (m = g = 1)."""
    r = np.linalg.norm(pos, axis=-1, keepdims=True)
    return _rotate(pos, np.pi / 2) / r * physics.get(system).circular_speed(r)


def _two_body_states(pos, factor) -> np.ndarray:
    """random_config's two-body states from its draws: body 1 at pos [n, 2], body 2 opposite,
    both on the circular orbit, the velocity scaled by factor [n, 1]."""
    vel = _circular_velocity("two_body", pos) * factor
    q = np.concatenate([pos, -pos], axis=-1)
    return np.concatenate([q, np.concatenate([vel, -vel], axis=-1)], axis=-1)


def _three_body_states(direction, r, jitter) -> np.ndarray:
    """random_config's three-body states from its draws: body 1 at radius r [n, 1] in the
    direction [n, 2], the others at 120 and 240 degrees, circular velocities scaled per component
    by jitter [n, 3, 2]."""
    n = len(direction)
    p1 = direction * r / np.linalg.norm(direction, axis=-1, keepdims=True)
    v1 = _circular_velocity("three_body", p1)  # the official r^-1/2 sqrt(sin 60 / (2 cos^2 30))
    angles = 2 * np.pi / 3 * np.arange(3)
    pos = np.stack([_rotate(p1, a) for a in angles], axis=1)  # [n, 3, 2]
    vel = np.stack([_rotate(v1, a) for a in angles], axis=1) * jitter  # no re-centring
    return np.concatenate([pos.reshape(n, 6), vel.reshape(n, 6)], axis=-1)  # m = 1: p = v


def _official_two_body(rng: np.random.Generator, n: int) -> np.ndarray:
    # experiment-2body/data.py, random_config(orbit_noise=5e-2, min_radius=0.5, max_radius=1.5)
    pos = rng.uniform(0.5, 1.5, size=(n, 2))
    return _two_body_states(pos, 1 + 0.05 * rng.standard_normal((n, 1)))


def _official_three_body(rng: np.random.Generator, n: int) -> np.ndarray:
    # experiment-3body/data.py, random_config(nu=2e-1, min_radius=0.9, max_radius=1.2)
    direction = rng.uniform(-1.0, 1.0, size=(n, 2))
    r = rng.uniform(0.9, 1.2, size=(n, 1))
    return _three_body_states(direction, r, 1 + 0.2 * rng.uniform(-1.0, 1.0, size=(n, 3, 2)))


def _notebook_two_body(state: np.random.RandomState) -> np.ndarray:
    # random_config() after np.random.seed(k): the same draws in the same order.
    pos = state.rand(2) * (1.5 - 0.5) + 0.5
    return _two_body_states(pos[None], np.array([[1 + 5e-2 * state.randn()]]))[0]


def _notebook_three_body(state: np.random.RandomState) -> np.ndarray:
    direction = 2 * state.rand(2) - 1
    r = state.rand() * (1.2 - 0.9) + 0.9
    jitter = np.stack([1 + 2e-1 * (2 * state.rand(2) - 1) for _ in range(3)])
    return _three_body_states(direction[None], np.array([[r]]), jitter[None])[0]


def notebook_eval_states(system: str, n: int, seed: int = 0) -> np.ndarray:
    """The evaluation states x0 [n, 2 dim] of the official analysis notebooks.

    mass_spring, pendulum (analyze-spring / analyze-pend.ipynb): x0 = U(-0.8, 0.8)^2 + 0.2
    sign(x0), from SeedSequence([seed, SPLIT_IDS["eval"], 0]) (the notebooks draw from the
    global NumPy state, wherever the cells before left it). two_body, three_body
    (analyze-2body / analyze-3body.ipynb): trial i is `np.random.seed(i); random_config()`; here
    state i is that with np.random.RandomState(n * seed + i), so seed 0 gives exactly the
    notebooks' 15 states.
    """
    if system in _NOTEBOOK_NBODY:
        draw = _NOTEBOOK_NBODY[system]
        return np.stack([draw(np.random.RandomState(n * seed + i)) for i in range(n)])
    if system not in ("mass_spring", "pendulum"):
        raise DataError(f"`system` must be one of {NOTEBOOK_SYSTEMS} for the notebooks' "
                        f"evaluation states, got {system!r}.", "system")
    x0 = _rng(seed, "eval", 0, 0).uniform(-0.8, 0.8, size=(n, 2))
    return x0 + 0.2 * np.sign(x0)


_NOTEBOOK_NBODY = {"two_body": _notebook_two_body, "three_body": _notebook_three_body}
NOTEBOOK_SYSTEMS = ("mass_spring", "pendulum", *_NOTEBOOK_NBODY)


_OFFICIAL = {"two_body": _official_two_body, "three_body": _official_three_body}
SAMPLERS = ("system", "official")
EVAL_SAMPLERS = ("task", "notebook")
_SAMPLER_SUFFIXES = (("", "official", "notebook"), ("_uniform", "system", "task"))


def official_initial_states(system: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """n initial states x0 = (q, p) [n, 2 dim] drawn as the official HNN code draws them
    (module docstring), for `system` two_body or three_body (m = g = 1)."""
    if system not in _OFFICIAL:
        raise DataError(f"`system` must be one of {tuple(_OFFICIAL)} for the official sampler, "
                        f"got {system!r}.", "system")
    return _OFFICIAL[system](rng, n)


_TASKS = {
    task.name: task
    for task in (
        Task("spring", "mass_spring", eval_sampler="notebook"),
        Task("spring_unit", "mass_spring", overrides=(("k", 1.0), ("m", 1.0)),
             eval_sampler="notebook"),
        Task("pendulum", "pendulum", n_points=45, eval_sampler="notebook"),
        *(Task(f"two_body{suffix}", "two_body", overrides=(("velocity_jitter", 0.05),),
               n_train=800, n_test=200, n_points=50, span=(0.0, 20.0), noise_std=0.0,
               steps=10_000, batch_size=200, weight_decay=0.0, eval_span=(0.0, 25.0),
               eval_points=500, sampler=sampler, eval_sampler=eval_sampler)
          for suffix, sampler, eval_sampler in _SAMPLER_SUFFIXES),
        *(Task(f"three_body{suffix}", "three_body", overrides=(("velocity_jitter", 0.2),),
               n_train=4000, n_test=1000, n_points=20, span=(0.0, 5.0), noise_std=0.0,
               steps=10_000, batch_size=600, eval_span=(0.0, 3.0), eval_points=500,
               sampler=sampler, eval_sampler=eval_sampler)
          for suffix, sampler, eval_sampler in _SAMPLER_SUFFIXES),
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
