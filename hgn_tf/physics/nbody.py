"""Gravitational n-body problems in the plane: two_body and three_body (HGN, section 4).

Equal masses m, gravitational constant g, body i at q_i = (x_i, y_i) with momentum p_i; the state is
laid out as q = [x_1, y_1, x_2, y_2, ...] (dim = 2 n_bodies), and p likewise.

    H(q, p) = sum_i |p_i|^2 / (2 m) - sum_{i<j} g m^2 / |q_i - q_j|          m = 1, g = 1
    dq_i/dt = dH/dp_i = p_i / m
    dp_i/dt = -dH/dq_i = -sum_{j != i} g m^2 (q_i - q_j) / |q_i - q_j|^3

Initial states. A "point on a circle in phase space" is not defined for these systems; like the
public HNN code we start the bodies on a near-circular orbit around the centre of mass:

  1. r ~ U(radius_range), theta ~ U(0, 2 pi). Body k (k = 0..B-1) sits at angle
     phi_k = theta + 2 pi k / B on the circle of radius r around the origin (two_body: opposite
     points; three_body: 120 degrees apart). The centre of mass is the origin.
  2. The speed of a circular orbit of B equal masses on a regular polygon of circumradius r is
        v^2 = (g m / (4 r)) sum_{k=1}^{B-1} 1 / sin(pi k / B),
     i.e. v^2 = g m / (4 r) for two bodies (separation 2 r) and v^2 = g m / (sqrt(3) r) for three
     (equilateral triangle). Every body moves counter-clockwise, v_k = v (-sin phi_k, cos phi_k)
     (the HNN code also uses a single direction of rotation).
  3. Each velocity component is multiplied by its own factor (1 + velocity_jitter * N(0, 1)) (field
     `velocity_jitter`, default 0.1), which makes the orbits slightly eccentric.
  4. The mean velocity is subtracted, so the total momentum is zero and the centre of mass stays at
     the origin; each body starts at distance exactly r from it.
  p_k = m v_k.

Noise: std 0.05 (two_body) and 0.2 (three_body), added to positions and momenta.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import ClassVar

import numpy as np

from hgn_tf.physics.base import BODY_COLOURS, InitialParametrisation, PhysicalSystem

__all__ = ["ThreeBody", "TwoBody"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class _NBody(PhysicalSystem):
    """Equal point masses in the plane under Newtonian gravity (base of TwoBody, ThreeBody)."""

    m: float = 1.0
    g: float = 1.0
    velocity_jitter: float = 0.1

    constant_names: ClassVar[tuple[str, ...]] = ("m", "g")

    def _validate(self) -> None:
        self._set("velocity_jitter", self._as_float("velocity_jitter"))
        if not self.velocity_jitter >= 0:
            raise self.invalid("velocity_jitter", self.velocity_jitter, "a finite float >= 0")

    def _bodies(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return x.reshape(x.shape[:-1] + (self.n_bodies, 2))

    def hamiltonian(self, q, p, t=0.0) -> np.ndarray:
        qb, pb = self._bodies(q), self._bodies(p)
        energy = (pb[..., 0] ** 2 + pb[..., 1] ** 2).sum(axis=-1) / (2 * self.m)
        for i, j in itertools.combinations(range(self.n_bodies), 2):
            d = qb[..., i, :] - qb[..., j, :]
            energy = energy - self.g * self.m**2 / np.sqrt(d[..., 0] ** 2 + d[..., 1] ** 2)
        return energy

    def dynamics(self, q, p, t) -> tuple[np.ndarray, np.ndarray]:
        qb = self._bodies(q)
        dq = np.asarray(p, dtype=np.float64) / self.m
        dp = np.zeros_like(qb)
        for i, j in itertools.combinations(range(self.n_bodies), 2):
            d = qb[..., i, :] - qb[..., j, :]
            r2 = d[..., 0] ** 2 + d[..., 1] ** 2
            force = d * (self.g * self.m**2 / (r2 * np.sqrt(r2)))[..., None]
            dp[..., i, :] -= force
            dp[..., j, :] += force
        return dq, dp.reshape(dq.shape)

    def circular_speed(self, r) -> np.ndarray:
        """Speed of each body on a circular orbit of radius r around the centre of mass."""
        k = np.arange(1, self.n_bodies)
        return np.sqrt(
            self.g * self.m / (4 * np.asarray(r)) * np.sum(1 / np.sin(np.pi * k / self.n_bodies))
        )

    def sample_initial(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        r = rng.uniform(self.radius_range[0], self.radius_range[1], size=n)
        theta = rng.uniform(0.0, 2 * np.pi, size=n)
        jitter = rng.standard_normal((n, self.n_bodies, 2))
        return self._orbit_state(r, theta, jitter)

    def _orbit_state(self, r, theta, jitter) -> tuple[np.ndarray, np.ndarray]:
        """Steps 1-4 of the module doc: r [n], theta [n], jitter [n, B, 2] -> (q0, p0)."""
        n = r.shape[0]
        phi = theta[:, None] + 2 * np.pi * np.arange(self.n_bodies) / self.n_bodies
        direction = np.stack([np.cos(phi), np.sin(phi)], axis=-1)  # [n, B, 2]
        position = r[:, None, None] * direction
        velocity = self.circular_speed(r)[:, None, None] * np.stack(
            [-direction[..., 1], direction[..., 0]], axis=-1
        )
        velocity = velocity * (1 + self.velocity_jitter * jitter)
        velocity = velocity - velocity.mean(axis=1, keepdims=True)
        return position.reshape(n, self.dim), (self.m * velocity).reshape(n, self.dim)

    def initial_parametrisation(self) -> InitialParametrisation:
        """u = (r, theta, jitter [2 B]) of `sample_initial`: r uniform on `radius_range`, theta
        uniform (the state is 2 pi-periodic in it, so it is left unbounded), jitter N(0, I)."""
        b = self.n_bodies
        lo, hi = self.radius_range

        def to_state(u):
            u = np.asarray(u, dtype=np.float64)
            return self._orbit_state(u[:, 0], u[:, 1], u[:, 2:].reshape(-1, b, 2))

        def log_prior(u):
            u = np.asarray(u, dtype=np.float64)
            inside = (u[:, 0] >= lo) & (u[:, 0] <= hi)
            return np.where(inside, -0.5 * (u[:, 2:] ** 2).sum(axis=1), -np.inf)

        def guess(q, p):
            bodies = self._bodies(q)  # [n, B, 2]
            r = np.clip(np.linalg.norm(bodies, axis=-1).mean(axis=1), lo, hi)
            theta = np.arctan2(bodies[:, 0, 1], bodies[:, 0, 0])
            return np.concatenate([r[:, None], theta[:, None], np.zeros((len(r), 2 * b))], 1)

        size = 2 + 2 * b
        return InitialParametrisation(
            size=size, to_state=to_state, log_prior=log_prior, guess=guess,
            standard_normal=tuple(range(2, size)),
            lower=np.array([lo] + [-np.inf] * (size - 1)),
            upper=np.array([hi] + [np.inf] * (size - 1)))

    def positions(self, q) -> np.ndarray:
        return self._bodies(q)

    def coordinates(self, positions) -> np.ndarray:
        """q = [x_1, y_1, x_2, y_2, ...]: the disc centres themselves."""
        positions = np.asarray(positions, dtype=np.float64)
        return positions.reshape(positions.shape[:-2] + (self.dim,))


@dataclasses.dataclass(frozen=True, kw_only=True)
class TwoBody(_NBody):
    """Two equal masses on a near-circular orbit around their centre of mass."""

    name: str = dataclasses.field(default="two_body", init=False)
    radius_range: tuple[float, float] = (0.5, 1.5)
    noise_std: float = 0.05
    world_extent: float = 2.4
    body_radius: float = 0.45

    n_bodies: ClassVar[int] = 2
    dim: ClassVar[int] = 4
    colours: ClassVar[tuple] = BODY_COLOURS[:2]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ThreeBody(_NBody):
    """Three equal masses starting near the rotating equilateral (Lagrange) configuration."""

    name: str = dataclasses.field(default="three_body", init=False)
    radius_range: tuple[float, float] = (0.9, 1.2)
    noise_std: float = 0.2
    world_extent: float = 2.8
    body_radius: float = 0.52

    n_bodies: ClassVar[int] = 3
    dim: ClassVar[int] = 6
    colours: ClassVar[tuple] = BODY_COLOURS[:3]
