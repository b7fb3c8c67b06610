"""The interface of a ground-truth physical system, and what all systems share.

A system is a frozen dataclass: its fields are the physical constants, the initial-state
distribution (`radius_range`), the observation noise (`noise_std`) and the picture geometry
(`world_extent`, `body_radius`). Fields are validated at construction.

Conventions (all arrays float64):

    q, p      generalised coordinates and conjugate momenta, shape [..., dim]
    t         time: a scalar or an array broadcastable to q.shape[:-1]
    H(q, p, t)                                   `hamiltonian`, shape [...]
    dq/dt = dH/dp,   dp/dt = -dH/dq               `dynamics`, both gradients written analytically
                                                  (tests compare them with finite differences of H)
    positions(q) -> [..., n_bodies, 2]           world coordinates (x right, y up) of each disc
    coordinates(positions) -> q [..., dim]       its inverse (`physics.readback` reads positions
                                                  off frames; angles come back in (-pi, pi])
    momenta(q, qdot, t) -> p [..., dim]          the inverse of dq/dt = dH/dp
    conserved_energy(q, p, t) -> [...]           H, or the invariant of a time-dependent H
    constraint_residual(positions)               [..., C] violations of rigid constraints (rods),
                                                  or None for a system without any

`simulate` integrates Hamilton's equations for a batch with `ode.integrate` (the DOP853 tableau,
one adaptive step size per trajectory, rtol = atol = 1e-11): accurate to ~1e-10, and each
trajectory is bitwise independent of the batch it was simulated in.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable
from typing import ClassVar

import numpy as np

from hgn_tf.errors import DataError
from hgn_tf.physics import ode

__all__ = ["ATOL", "RTOL", "InitialParametrisation", "PhaseSphereSystem", "PhysicalSystem",
           "phase_sphere_log_density", "sample_phase_sphere"]

RTOL = 1e-11
ATOL = 1e-11

Colour = tuple[float, float, float]
# Distinct hues, each far from the default grey background in at least one channel.
BODY_COLOURS: tuple[Colour, ...] = (
    (0.95, 0.35, 0.25),  # orange-red
    (0.30, 0.85, 0.40),  # green
    (0.35, 0.55, 0.95),  # blue
)


def sample_phase_sphere(
    rng: np.random.Generator, n: int, dim: int, radius_range: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Samples r ~ U(radius_range), then (q, p) uniformly on the sphere |(q, p)| = r in R^(2 dim).

    For dim = 1 this is a uniform angle on the circle of radius r in the (q, p) plane. The
    direction is a normalised standard Gaussian vector, which is uniform on the sphere.
    Returns (q0, p0), each [n, dim].
    """
    r = rng.uniform(radius_range[0], radius_range[1], size=n)
    direction = rng.standard_normal((n, 2 * dim))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    state = r[:, None] * direction
    return state[:, :dim], state[:, dim:]


def phase_sphere_log_density(q, p, radius_range: tuple[float, float]) -> np.ndarray:
    """log of `sample_phase_sphere`'s density at (q, p) [..., dim] in R^(2 dim):

        density(x) = 1 / ((r_max - r_min) |S^(2 dim - 1)| r^(2 dim - 1))   for r_min <= |x| <= r_max

    (r uniform, the direction uniform on the unit sphere of area |S^(n-1)| = 2 pi^(n/2) /
    Gamma(n/2)), and -inf outside the shell.
    """
    x = np.concatenate([np.asarray(q, np.float64), np.asarray(p, np.float64)], axis=-1)
    n = x.shape[-1]
    r = np.linalg.norm(x, axis=-1)
    lo, hi = radius_range
    log_area = np.log(2.0) + (n / 2) * np.log(np.pi) - math.lgamma(n / 2)
    inside = (r >= lo) & (r <= hi)
    with np.errstate(divide="ignore"):
        value = -np.log(hi - lo) - log_area - (n - 1) * np.log(r)
    return np.where(inside, value, -np.inf)


@dataclasses.dataclass(frozen=True)
class InitialParametrisation:
    """How `sample_initial` draws a state, as a map from variables with a known density:

        u ~ prior [size],   (q0, p0) = to_state(u)

    What the posterior over a sequence's initial state needs (`physics.inference`).

    Attributes:
      size: the number of variables u.
      to_state: u [N, size] -> (q0 [N, dim], p0 [N, dim]).
      log_prior: u [N, size] -> [N], the prior's log density (up to a constant), -inf outside
        its support.
      guess: (q0, p0) [N, dim] each -> u [N, size], a starting point near a state estimate.
      standard_normal: the indices of u with a N(0, 1) prior (fitted as residuals); the others'
        prior is flat on `lower`..`upper`.
      lower, upper: [size] bounds of u (-inf / inf where unbounded).
    """

    size: int
    to_state: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    log_prior: Callable[[np.ndarray], np.ndarray]
    guess: Callable[[np.ndarray, np.ndarray], np.ndarray]
    standard_normal: tuple[int, ...]
    lower: np.ndarray
    upper: np.ndarray


@dataclasses.dataclass(frozen=True, kw_only=True)
class PhysicalSystem(abc.ABC):
    """A Hamiltonian system with its sampler and its picture geometry.

    Subclasses declare the fields (with their defaults) and the class variables `n_bodies`, `dim`,
    `colours` and `constant_names`, and implement the abstract methods.

    Attributes:
      name: the system's registry name (not overridable).
      radius_range: (lo, hi), 0 <= lo < hi: the range of the initial-state radius r ~ U(lo, hi).
      noise_std: standard deviation of the Gaussian noise `generate` adds to every phase-space
        coordinate of every frame (the HGN paper prints "sigma^2 = 0.1", its reproduction "std 0.1";
        we use a standard deviation and name it so).
      world_extent: the picture shows the world square [-world_extent, world_extent]^2.
      body_radius: radius of each body's disc, in world units.
    """

    name: str
    radius_range: tuple[float, float]
    noise_std: float
    world_extent: float
    body_radius: float

    n_bodies: ClassVar[int]
    dim: ClassVar[int]
    colours: ClassVar[tuple[Colour, ...]]
    constant_names: ClassVar[tuple[str, ...]]
    # Every coordinate of q is an angle (period 2 pi): read-back unwraps them along time.
    angles: ClassVar[bool] = False

    def __post_init__(self) -> None:
        for field in (*self.constant_names, "noise_std", "world_extent", "body_radius"):
            self._set(field, self._as_float(field))
        for field in self.constant_names:
            if not getattr(self, field) > 0:
                raise self.invalid(field, getattr(self, field), "a finite float > 0")
        self._set("radius_range", self._checked_radius_range())
        if not self.noise_std >= 0:
            raise self.invalid("noise_std", self.noise_std, "a finite float >= 0")
        if not self.world_extent > 0:
            raise self.invalid("world_extent", self.world_extent, "a finite float > 0")
        if not 0 < self.body_radius < self.world_extent:
            raise self.invalid(
                "body_radius",
                self.body_radius,
                f"0 < body_radius < world_extent={self.world_extent}",
            )
        self._validate()

    # -- validation helpers --------------------------------------------------------------------

    def invalid(self, field: str, value, allowed: str) -> DataError:
        """The error for a bad field value: names the system, field, value and what is allowed."""
        return DataError(f"{self.name}: invalid {field}={value!r}; allowed: {allowed}.", field)

    def _set(self, field: str, value) -> None:
        object.__setattr__(self, field, value)

    def _as_float(self, field: str) -> float:
        value = getattr(self, field)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self.invalid(field, value, "a real number") from None
        if not np.isfinite(number):
            raise self.invalid(field, value, "a finite real number")
        return number

    def _checked_radius_range(self) -> tuple[float, float]:
        value = self.radius_range
        allowed = "a pair (lo, hi) of finite floats with 0 <= lo < hi"
        try:
            lo, hi = (float(v) for v in value)
        except (TypeError, ValueError):
            raise self.invalid("radius_range", value, allowed) from None
        if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo < hi):
            raise self.invalid("radius_range", value, allowed)
        return (lo, hi)

    def _validate(self) -> None:  # noqa: B027 (an optional hook: most systems need no extra check)
        """Hook for checks specific to a system (after the common ones)."""

    # -- physics -------------------------------------------------------------------------------

    def constants(self) -> dict[str, float]:
        """The physical constants only, e.g. {"k": 2.0, "m": 0.5}."""
        return {name: getattr(self, name) for name in self.constant_names}

    @abc.abstractmethod
    def hamiltonian(self, q, p, t=0.0) -> np.ndarray:
        """H(q, p, t), float64 [...] for q, p of shape [..., dim]."""

    @abc.abstractmethod
    def dynamics(self, q, p, t) -> tuple[np.ndarray, np.ndarray]:
        """(dq/dt, dp/dt) = (dH/dp, -dH/dq), each [..., dim]."""

    @abc.abstractmethod
    def sample_initial(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n initial states (q0 [n, dim], p0 [n, dim]) drawn with `rng`."""

    def initial_parametrisation(self) -> InitialParametrisation | None:
        """`sample_initial` as a map from variables with a known density (what the posterior over
        a sequence's initial state needs, `physics.inference`), or None where the system does
        not say. `PhaseSphereSystem` and the n-body systems say."""
        return None

    @abc.abstractmethod
    def positions(self, q) -> np.ndarray:
        """World coordinates [..., n_bodies, 2] of each body's disc centre."""

    @abc.abstractmethod
    def coordinates(self, positions) -> np.ndarray:
        """The inverse of `positions`: q [..., dim] from disc centres [..., n_bodies, 2].

        Angles are returned in (-pi, pi]; unwrap them along time for a trajectory. Where the
        positions violate a constraint (a rod of the wrong length) the nearest q is returned.
        """

    def momenta(self, q, qdot, t=0.0) -> np.ndarray:
        """p [..., dim] such that dH/dp (q, p, t) = qdot: the inverse of dq/dt in `dynamics`.

        Every system here has a kinetic energy quadratic in p with no linear term, so
        dq/dt = A(q, t) p with A symmetric positive definite. A is read off `dynamics` itself
        (column i is dq/dt at p = e_i), so no formula is typed in twice, and p = A^-1 qdot.
        """
        q = np.asarray(q, dtype=np.float64)
        qdot = np.asarray(qdot, dtype=np.float64)
        shape = np.broadcast_shapes(q.shape, qdot.shape)
        q, qdot = np.broadcast_to(q, shape), np.broadcast_to(qdot, shape)
        t = np.broadcast_to(np.asarray(t, dtype=np.float64), shape[:-1])
        eye = np.eye(self.dim)
        columns = [self.dynamics(q, np.broadcast_to(eye[i], shape), t)[0] for i in range(self.dim)]
        a = np.stack(columns, axis=-1)  # [..., dim, dim]: A[..., j, i] = d(dq_j/dt)/dp_i
        return np.linalg.solve(a, qdot[..., None])[..., 0]

    def conserved_energy(self, q, p, t=0.0) -> np.ndarray:
        """The quantity the exact dynamics conserves, [...]: H itself for an autonomous H.

        A system with a time-dependent H (the damped oscillator) overrides this with its invariant.
        """
        return self.hamiltonian(q, p, t)

    def constraint_residual(self, positions) -> np.ndarray | None:
        """[..., C]: how far the disc centres [..., n_bodies, 2] violate the system's rigid
        constraints (world units; 0 on every true configuration), or None without constraints."""
        return None

    def simulate(self, q0, p0, times) -> tuple[np.ndarray, np.ndarray]:
        """Integrates Hamilton's equations from (q0, p0) at times[0].

        Args:
          q0, p0: initial states, each [N, dim].
          times: strictly increasing times [T]; the initial state is at times[0].

        Returns:
          (q, p), each float64 [N, T, dim].
        """
        q0 = np.asarray(q0, dtype=np.float64)
        p0 = np.asarray(p0, dtype=np.float64)
        times = np.asarray(times, dtype=np.float64)
        shape = (q0.shape[0], self.dim) if q0.ndim == 2 else None
        if shape is None or q0.shape != shape or p0.shape != shape:
            raise DataError(
                f"{self.name}: q0 and p0 must both have shape [N, dim={self.dim}], "
                f"got {q0.shape} and {p0.shape}.",
                "q0",
            )
        if times.ndim != 1 or times.size == 0 or np.any(np.diff(times) <= 0):
            raise DataError(
                f"{self.name}: times must be a non-empty, strictly increasing 1-D array, "
                f"got {times!r}.",
                "times",
            )
        n = self.dim

        def rhs(t: np.ndarray, y: np.ndarray) -> np.ndarray:
            dq, dp = self.dynamics(y[:, :n], y[:, n:], t)
            return np.concatenate([dq, dp], axis=-1)

        y = ode.integrate(rhs, np.concatenate([q0, p0], axis=-1), times, rtol=RTOL, atol=ATOL)
        return y[..., :n], y[..., n:]


@dataclasses.dataclass(frozen=True, kw_only=True)
class PhaseSphereSystem(PhysicalSystem):
    """A system whose initial states are drawn uniformly on a phase-space shell
    (`sample_phase_sphere` on its `radius_range`): the sampler, its density
    (`phase_sphere_log_density`) and u = (q0, p0) as the posterior's variables."""

    def sample_initial(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        return sample_phase_sphere(rng, n, self.dim, self.radius_range)

    def initial_parametrisation(self) -> InitialParametrisation:
        d = self.dim
        split = lambda u: (u[:, :d], u[:, d:])  # noqa: E731
        return InitialParametrisation(
            size=2 * d, to_state=split,
            log_prior=lambda u: phase_sphere_log_density(*split(u), self.radius_range),
            guess=lambda q, p: np.concatenate([q, p], axis=-1), standard_normal=(),
            lower=np.full(2 * d, -np.inf), upper=np.full(2 * d, np.inf))
