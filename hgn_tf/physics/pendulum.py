"""Ideal pendulum (HGN, section 4; the HNN paper's form).

    H(q, p) = 2 m g l (1 - cos q) + p^2 / (2 m l^2)    g = 3, m = 0.5, l = 1
    dq/dt = dH/dp = p / (m l^2)
    dp/dt = -dH/dq = -2 m g l sin q

(The factor 2 in the potential is the HNN/HGN convention; it makes the small-angle frequency
sqrt(2 g / l).) Initial states: r ~ U(1.3, 2.3), then (q, p) uniform on the circle of radius r; with
the defaults no such state goes over the top (on the circle of radius 2.3, max H = 5.83 < 6 = H at
q = pi, p = 0). Noise: std 0.1. The bob is drawn at (l sin q, -l cos q), the pivot at the origin;
rod and pivot are invisible.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from hgn_tf.physics.base import BODY_COLOURS, PhaseSphereSystem

__all__ = ["Pendulum"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Pendulum(PhaseSphereSystem):
    """A point mass on a massless rod of length l, swinging in the plane."""

    name: str = dataclasses.field(default="pendulum", init=False)
    m: float = 0.5
    g: float = 3.0
    l: float = 1.0
    radius_range: tuple[float, float] = (1.3, 2.3)
    noise_std: float = 0.1
    world_extent: float = 1.4
    body_radius: float = 0.26

    n_bodies: ClassVar[int] = 1
    dim: ClassVar[int] = 1
    colours: ClassVar[tuple] = BODY_COLOURS[:1]
    constant_names: ClassVar[tuple[str, ...]] = ("m", "g", "l")
    angles: ClassVar[bool] = True

    def hamiltonian(self, q, p, t=0.0) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        p = np.asarray(p, dtype=np.float64)
        m, g, l = self.m, self.g, self.l
        return (2 * m * g * l * (1 - np.cos(q)) + p**2 / (2 * m * l**2))[..., 0]

    def dynamics(self, q, p, t) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(q, dtype=np.float64)
        p = np.asarray(p, dtype=np.float64)
        m, g, l = self.m, self.g, self.l
        return p / (m * l**2), -2 * m * g * l * np.sin(q)

    def positions(self, q) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        return np.stack([self.l * np.sin(q), -self.l * np.cos(q)], axis=-1)

    def coordinates(self, positions) -> np.ndarray:
        """q = atan2(x, -y) of the bob at (x, y) = positions[..., 0, :], in (-pi, pi]."""
        bob = np.asarray(positions, dtype=np.float64)[..., 0, :]
        return np.arctan2(bob[..., 0], -bob[..., 1])[..., None]

    def constraint_residual(self, positions) -> np.ndarray:
        """[..., 1]: the rod-length residual |bob - pivot| - l (the pivot is the origin)."""
        bob = np.asarray(positions, dtype=np.float64)[..., 0, :]
        return (np.hypot(bob[..., 0], bob[..., 1]) - self.l)[..., None]
