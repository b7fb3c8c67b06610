"""Ground-truth physical systems, their renderer and the dataset generator (NumPy/SciPy only).

    from hgn_tf import physics
    system = physics.get("pendulum", noise_std=0.05)
    data = physics.generate(system, 16, seed=0, split="train")

Systems (one module each; the Hamiltonian and the equations of motion are in each docstring):
mass_spring, pendulum, two_body, three_body (nbody.py), double_pendulum, damped_oscillator.
base.py holds the shared interface, ode.py the per-trajectory DOP853 integrator, render.py the
disc renderer, generate.py the seeded dataset generator and readback.py the renderer inverted
(positions, momenta and the true energy read back from frames).

Picture geometry (fields world_extent and body_radius). Every disc is ~3 pixels in radius at 32x32
(body_radius / world_extent ~ 0.19). The extents were chosen from 50,000 simulated noisy 30-frame
sequences per system (dt = 0.125): the largest |x| or |y| any disc centre reached, plus
body_radius, stays inside the canvas for all of them except 0.03% of three_body sequences, which
`generate` redraws.

    system             world_extent  body_radius  largest centre coordinate seen
    mass_spring        1.7           0.32         1.43
    pendulum           1.4           0.26         1.00 (the bob stays on the unit circle)
    two_body           2.4           0.45         1.93
    three_body         2.8           0.52         2.52
    double_pendulum    2.6           0.48         2.00 (the bobs stay within 2 l of the pivot)
    damped_oscillator  2.1           0.39         1.67
"""

from __future__ import annotations

import dataclasses

from hgn_tf.errors import DataError
from hgn_tf.physics.base import PhysicalSystem
from hgn_tf.physics.damped_oscillator import DampedOscillator
from hgn_tf.physics.double_pendulum import DoublePendulum
from hgn_tf.physics.generate import SPLIT_IDS, STORED_FRAMES, generate, render_states
from hgn_tf.physics.mass_spring import MassSpring
from hgn_tf.physics.nbody import ThreeBody, TwoBody
from hgn_tf.physics.pendulum import Pendulum
from hgn_tf.physics.render import SUPPORTED_RESOLUTIONS, project, render

__all__ = [
    "SPLIT_IDS",
    "STORED_FRAMES",
    "SUPPORTED_RESOLUTIONS",
    "SYSTEM_NAMES",
    "DampedOscillator",
    "DoublePendulum",
    "MassSpring",
    "Pendulum",
    "PhysicalSystem",
    "ThreeBody",
    "TwoBody",
    "generate",
    "get",
    "project",
    "render",
    "render_states",
]

_SYSTEMS: dict[str, type[PhysicalSystem]] = {
    "mass_spring": MassSpring,
    "pendulum": Pendulum,
    "two_body": TwoBody,
    "three_body": ThreeBody,
    "double_pendulum": DoublePendulum,
    "damped_oscillator": DampedOscillator,
}
SYSTEM_NAMES: tuple[str, ...] = tuple(_SYSTEMS)


def get(name: str, /, **overrides) -> PhysicalSystem:
    """The system called `name`, with the given fields replaced.

    Args:
      name: one of SYSTEM_NAMES.
      **overrides: new values for the system's dataclass fields (e.g. noise_std=0.05).

    Raises:
      DataError: unknown name, unknown field, or a field value out of its allowed range.
    """
    if name not in _SYSTEMS:
        raise DataError(
            f"Unknown physical system name={name!r}; allowed: {SYSTEM_NAMES}.", "system")
    cls = _SYSTEMS[name]
    fields = tuple(f.name for f in dataclasses.fields(cls) if f.init)
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise DataError(
            f"{name}: unknown field(s) {', '.join(f'{k}={overrides[k]!r}' for k in unknown)}; "
            f"valid fields: {fields}.",
            unknown[0],
        )
    return cls(**overrides)
