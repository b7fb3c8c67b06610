"""Double pendulum with equal masses and lengths ([Re] HGN, section 3.3).

Angles q1, q2 from the downward vertical, conjugate momenta p1, p2, D = q1 - q2:

    H = T + V
    T = (a p1^2 + b p2^2 + c p1 p2 cos D) / (2 m l^2 (1 + sin^2 D))           m = 1, l = 1, g = 3
    V = m g l (3 - 2 cos q1 - cos q2)

Two kinetic forms (field `kinetic`):

    "standard"      a = 1, b = 2, c = -2: the textbook Hamiltonian for m1 = m2 = m, l1 = l2 = l,
                    (m2 l2^2 p1^2 + (m1 + m2) l1^2 p2^2 - 2 m2 l1 l2 p1 p2 cos D)
                    / (2 m2 l1^2 l2^2 (m1 + m2 sin^2 D)), with the masses and lengths set equal.
    "reproduction"  a = 1, b = 1, c = +2: the form printed in the [Re] HGN paper. It is a valid
                    (positive definite) kinetic energy, (p1 + p2 cos D)^2 + p2^2 sin^2 D over the
                    same denominator, but not the double pendulum's.

Equations of motion, with S = 1 + sin^2 D, N = a p1^2 + b p2^2 + c p1 p2 cos D and
kappa = 1 / (2 m l^2):

    dq1/dt = dH/dp1 = kappa (2 a p1 + c p2 cos D) / S
    dq2/dt = dH/dp2 = kappa (2 b p2 + c p1 cos D) / S
    dT/dD  = -kappa (c p1 p2 sin D / S + N sin(2 D) / S^2)
    dp1/dt = -dH/dq1 = -dT/dD - 2 m g l sin q1
    dp2/dt = -dH/dq2 = +dT/dD - m g l sin q2

Initial states: r ~ U(0.5, 1.3), then (q1, q2, p1, p2) uniform on the 3-sphere of radius r. Noise:
std 0.05. Bob 1 is drawn at (l sin q1, -l cos q1), bob 2 at bob 1 + (l sin q2, -l cos q2), the pivot
at the origin; rods and pivot are invisible.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from hgn_tf.physics.base import BODY_COLOURS, PhaseSphereSystem

__all__ = ["KINETIC_FORMS", "DoublePendulum"]

# kinetic form -> (a, b, c) in T = (a p1^2 + b p2^2 + c p1 p2 cos D) / (2 m l^2 (1 + sin^2 D)).
KINETIC_FORMS: dict[str, tuple[float, float, float]] = {
    "standard": (1.0, 2.0, -2.0),
    "reproduction": (1.0, 1.0, 2.0),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class DoublePendulum(PhaseSphereSystem):
    """Two equal point masses on two equal massless rods, the second hanging from the first."""

    name: str = dataclasses.field(default="double_pendulum", init=False)
    m: float = 1.0
    l: float = 1.0
    g: float = 3.0
    kinetic: str = "standard"
    radius_range: tuple[float, float] = (0.5, 1.3)
    noise_std: float = 0.05
    world_extent: float = 2.6
    body_radius: float = 0.48

    n_bodies: ClassVar[int] = 2
    dim: ClassVar[int] = 2
    colours: ClassVar[tuple] = BODY_COLOURS[:2]
    constant_names: ClassVar[tuple[str, ...]] = ("m", "l", "g")
    angles: ClassVar[bool] = True

    def _validate(self) -> None:
        if self.kinetic not in KINETIC_FORMS:
            raise self.invalid("kinetic", self.kinetic, f"one of {tuple(KINETIC_FORMS)}")

    def hamiltonian(self, q, p, t=0.0) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        p = np.asarray(p, dtype=np.float64)
        a, b, c = KINETIC_FORMS[self.kinetic]
        m, l, g = self.m, self.l, self.g
        q1, q2, p1, p2 = q[..., 0], q[..., 1], p[..., 0], p[..., 1]
        d = q1 - q2
        kinetic = (a * p1**2 + b * p2**2 + c * p1 * p2 * np.cos(d)) / (
            2 * m * l**2 * (1 + np.sin(d) ** 2)
        )
        return kinetic + m * g * l * (3 - 2 * np.cos(q1) - np.cos(q2))

    def dynamics(self, q, p, t) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(q, dtype=np.float64)
        p = np.asarray(p, dtype=np.float64)
        a, b, c = KINETIC_FORMS[self.kinetic]
        m, l, g = self.m, self.l, self.g
        q1, q2, p1, p2 = q[..., 0], q[..., 1], p[..., 0], p[..., 1]
        d = q1 - q2
        cos_d, sin_d = np.cos(d), np.sin(d)
        s = 1 + sin_d**2
        kappa = 1 / (2 * m * l**2)
        numerator = a * p1**2 + b * p2**2 + c * p1 * p2 * cos_d
        dq1 = kappa * (2 * a * p1 + c * p2 * cos_d) / s
        dq2 = kappa * (2 * b * p2 + c * p1 * cos_d) / s
        dt_dd = -kappa * (c * p1 * p2 * sin_d / s + numerator * 2 * sin_d * cos_d / s**2)
        dp1 = -dt_dd - 2 * m * g * l * np.sin(q1)
        dp2 = dt_dd - m * g * l * np.sin(q2)
        return np.stack([dq1, dq2], axis=-1), np.stack([dp1, dp2], axis=-1)

    def positions(self, q) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        l = self.l
        bob1 = np.stack([l * np.sin(q[..., 0]), -l * np.cos(q[..., 0])], axis=-1)
        bob2 = bob1 + np.stack([l * np.sin(q[..., 1]), -l * np.cos(q[..., 1])], axis=-1)
        return np.stack([bob1, bob2], axis=-2)

    @staticmethod
    def _rods(positions) -> tuple[np.ndarray, np.ndarray]:
        """The two rod vectors, pivot -> bob 1 and bob 1 -> bob 2, each [..., 2]."""
        positions = np.asarray(positions, dtype=np.float64)
        return positions[..., 0, :], positions[..., 1, :] - positions[..., 0, :]

    def coordinates(self, positions) -> np.ndarray:
        """(q1, q2): the angle of each rod from the downward vertical, atan2(dx, -dy)."""
        rods = self._rods(positions)
        return np.stack([np.arctan2(r[..., 0], -r[..., 1]) for r in rods], axis=-1)

    def constraint_residual(self, positions) -> np.ndarray:
        """[..., 2]: each rod's length minus l (pivot -> bob 1, bob 1 -> bob 2)."""
        rods = self._rods(positions)
        return np.stack([np.hypot(r[..., 0], r[..., 1]) - self.l for r in rods], axis=-1)
