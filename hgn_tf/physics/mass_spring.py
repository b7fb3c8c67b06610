"""Ideal mass-spring (HGN, section 4).

    H(q, p) = k q^2 / 2 + p^2 / (2 m)                 k = 2, m = 0.5
    dq/dt = dH/dp = p / m
    dp/dt = -dH/dq = -k q

Analytic solution, with w = sqrt(k / m) and tau = t - t0:

    q(t) = q0 cos(w tau) + p0 / (m w) sin(w tau)
    p(t) = p0 cos(w tau) - m w q0 sin(w tau)

Initial states: r ~ U(0.1, 1.0), then (q, p) uniform on the circle of radius r. With the default
constants m w = 1, so r is also the amplitude of q. Noise: std 0.1. The body is drawn at (q, 0);
the spring is invisible.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from hgn_tf.physics.base import BODY_COLOURS, PhaseSphereSystem

__all__ = ["MassSpring"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class MassSpring(PhaseSphereSystem):
    """A mass on an ideal spring, oscillating along the x axis."""

    name: str = dataclasses.field(default="mass_spring", init=False)
    k: float = 2.0
    m: float = 0.5
    radius_range: tuple[float, float] = (0.1, 1.0)
    noise_std: float = 0.1
    world_extent: float = 1.7
    body_radius: float = 0.32

    n_bodies: ClassVar[int] = 1
    dim: ClassVar[int] = 1
    colours: ClassVar[tuple] = BODY_COLOURS[:1]
    constant_names: ClassVar[tuple[str, ...]] = ("k", "m")

    def hamiltonian(self, q, p, t=0.0) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        p = np.asarray(p, dtype=np.float64)
        return (0.5 * self.k * q**2 + p**2 / (2 * self.m))[..., 0]

    def dynamics(self, q, p, t) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(q, dtype=np.float64)
        p = np.asarray(p, dtype=np.float64)
        return p / self.m, -self.k * q

    def analytic_solution(self, q0, p0, times) -> tuple[np.ndarray, np.ndarray]:
        """Exact (q, p), each [N, T, 1], from (q0, p0) [N, 1] at times[0]."""
        q0 = np.asarray(q0, dtype=np.float64)[:, None, :]
        p0 = np.asarray(p0, dtype=np.float64)[:, None, :]
        times = np.asarray(times, dtype=np.float64)
        w = np.sqrt(self.k / self.m)
        phase = (w * (times - times[0]))[None, :, None]
        cos, sin = np.cos(phase), np.sin(phase)
        q = q0 * cos + p0 / (self.m * w) * sin
        p = p0 * cos - self.m * w * q0 * sin
        return q, p

    def positions(self, q) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        return np.stack([q, np.zeros_like(q)], axis=-1)

    def coordinates(self, positions) -> np.ndarray:
        """q = x of the body (its y is 0 on every true configuration and is ignored)."""
        return np.asarray(positions, dtype=np.float64)[..., 0, :1]
