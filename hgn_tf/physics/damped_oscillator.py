"""Damped harmonic oscillator as a time-dependent Hamiltonian system ([Re] HGN, section 3.3).

We use the standard Caldirola-Kanai (CK) Hamiltonian

    H(q, p, t) = exp(-gamma t) p^2 / (2 m) + exp(gamma t) k q^2 / 2      gamma = 0.3, m = 0.5, k = 2
    dq/dt = dH/dp = exp(-gamma t) p / m
    dp/dt = -dH/dq = -exp(gamma t) k q

so the canonical momentum is p = m exp(gamma t) dq/dt (not the mechanical momentum) and q obeys

    m q'' + m gamma q' + k q = 0.

Note: the formula printed in the [Re] HGN paper, exp(gamma t) (p^2 / (2 m) + k q^2 / 2), is *not*
damped: it is the undamped oscillator with time reparametrised by s = (exp(gamma t) - 1) / gamma.
We use the standard CK form above.

Underdamped analytic solution (gamma^2 / 4 < k / m, enforced at construction), tau = t - t0:

    wd   = sqrt(k / m - gamma^2 / 4)
    q(t) = exp(-gamma tau / 2) (q0 cos(wd tau) + B sin(wd tau)),  B = (v0 + gamma q0 / 2) / wd,
    v0   = exp(-gamma t0) p0 / m,     p(t) = m exp(gamma t) q'(t).

The mechanical energy E = m q'^2 / 2 + k q^2 / 2 = exp(-gamma t) H(q, p, t) decays
(dE/dt = -m gamma q'^2 <= 0). The "energy" stored in datasets is H itself at the frame's time.

The conserved, undamped-equivalent quantity. Q = exp(gamma t / 2) q obeys Q'' + wd^2 Q = 0, an
undamped oscillator, whose energy m Q'^2 / 2 + m wd^2 Q^2 / 2 is constant. In the canonical
variables (p = m exp(gamma t) q') it reads

    I(q, p, t) = exp(gamma t) (m q'^2 / 2 + k q^2 / 2 + m gamma q q' / 2)
               = H(q, p, t) + gamma q p / 2

(with E' = m q'^2 / 2 + k q^2 / 2 + m gamma q q' / 2, m q'' = -m gamma q' - k q gives
dE'/dt = -gamma E', so d(exp(gamma t) E')/dt = 0). `conserved_energy` returns I: read back from
frames, a damped trajectory is scored by it as the conservative ones are by H.

Initial states at t = 0: r ~ U(0.75, 1.4), then (q, p) uniform on the circle of radius r. Noise: std
0.1. The body is drawn at (q, 0).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from hgn_tf.physics.base import BODY_COLOURS, PhaseSphereSystem

__all__ = ["DampedOscillator"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DampedOscillator(PhaseSphereSystem):
    """An underdamped mass-spring along the x axis (Caldirola-Kanai Hamiltonian)."""

    name: str = dataclasses.field(default="damped_oscillator", init=False)
    gamma: float = 0.3
    m: float = 0.5
    k: float = 2.0
    radius_range: tuple[float, float] = (0.75, 1.4)
    noise_std: float = 0.1
    world_extent: float = 2.1
    body_radius: float = 0.39

    n_bodies: ClassVar[int] = 1
    dim: ClassVar[int] = 1
    colours: ClassVar[tuple] = BODY_COLOURS[:1]
    constant_names: ClassVar[tuple[str, ...]] = ("gamma", "m", "k")

    def _validate(self) -> None:
        critical = 2 * np.sqrt(self.k / self.m)
        if not self.gamma < critical:
            raise self.invalid(
                "gamma", self.gamma, f"0 < gamma < 2 sqrt(k / m) = {critical:.6g} (underdamped)"
            )

    @staticmethod
    def _time(t) -> np.ndarray:
        return np.asarray(t, dtype=np.float64)[..., None]

    def hamiltonian(self, q, p, t=0.0) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        p = np.asarray(p, dtype=np.float64)
        decay = np.exp(-self.gamma * self._time(t))
        return (decay * p**2 / (2 * self.m) + self.k * q**2 / (2 * decay))[..., 0]

    def dynamics(self, q, p, t) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(q, dtype=np.float64)
        p = np.asarray(p, dtype=np.float64)
        decay = np.exp(-self.gamma * self._time(t))
        return decay * p / self.m, -self.k * q / decay

    def mechanical_energy(self, q, p, t) -> np.ndarray:
        """E = m q'^2 / 2 + k q^2 / 2 = exp(-gamma t) H(q, p, t), [...]."""
        return np.exp(-self.gamma * np.asarray(t, dtype=np.float64)) * self.hamiltonian(q, p, t)

    def conserved_energy(self, q, p, t=0.0) -> np.ndarray:
        """I = H(q, p, t) + gamma q p / 2, constant along every trajectory (module docstring)."""
        q = np.asarray(q, dtype=np.float64)
        p = np.asarray(p, dtype=np.float64)
        return self.hamiltonian(q, p, t) + self.gamma / 2 * (q * p)[..., 0]

    def analytic_solution(self, q0, p0, times) -> tuple[np.ndarray, np.ndarray]:
        """Exact (q, p), each [N, T, 1], from (q0, p0) [N, 1] at times[0]."""
        q0 = np.asarray(q0, dtype=np.float64)[:, None, :]
        p0 = np.asarray(p0, dtype=np.float64)[:, None, :]
        times = np.asarray(times, dtype=np.float64)
        gamma, m = self.gamma, self.m
        wd = np.sqrt(self.k / m - gamma**2 / 4)
        tau = (times - times[0])[None, :, None]
        v0 = np.exp(-gamma * times[0]) * p0 / m
        b = (v0 + gamma * q0 / 2) / wd
        envelope = np.exp(-gamma * tau / 2)
        cos, sin = np.cos(wd * tau), np.sin(wd * tau)
        q = envelope * (q0 * cos + b * sin)
        velocity = envelope * (-gamma / 2 * (q0 * cos + b * sin) + wd * (b * cos - q0 * sin))
        p = m * np.exp(gamma * times)[None, :, None] * velocity
        return q, p

    def positions(self, q) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        return np.stack([q, np.zeros_like(q)], axis=-1)

    def coordinates(self, positions) -> np.ndarray:
        """q = x of the body (its y is 0 on every true configuration and is ignored)."""
        return np.asarray(positions, dtype=np.float64)[..., 0, :1]
