"""Sequences of a physical system: clean and noisy phase-space states, energies and pictures.

For example i of a split (index i counts from 0 over the whole split):

  1. rng_i = np.random.default_rng(SeedSequence([seed, SPLIT_IDS[split], i])); the a-th retry
     (a >= 1) uses SeedSequence([seed, SPLIT_IDS[split], i, a]).
  2. (q0, p0) = system.sample_initial(rng_i, 1); then the noise eps ~ N(0, 1) of shape
     [n_frames, 2 dim] is drawn from the same rng_i.
  3. (q, p) = system.simulate(q0, p0, t) at t_k = k dt, k = 0..n_frames-1 (batched over the chunk;
     the integrator is per-trajectory, so the result does not depend on the chunk).
  4. (q_noisy, p_noisy) = (q, p) + noise_std * eps: every phase-space coordinate of every frame.
  5. Rejection: if any disc, centred at the noisy position with radius body_radius, leaves the
     canvas [-world_extent, world_extent]^2 at any frame, the example is redrawn from the next
     retry's rng (never clipped); after MAX_ATTEMPTS attempts generation fails with RuntimeError.
  6. frames = render(system.positions(q_noisy)); energy = H(q, p, t) of the *clean* state.

Example i is therefore bitwise identical whatever `n` and `start_index` it was generated with.
"""

from __future__ import annotations

import numpy as np

from hgn_tf.errors import DataError
from hgn_tf.physics.base import PhysicalSystem
from hgn_tf.physics.render import check_resolution, render

__all__ = ["MAX_ATTEMPTS", "SPLIT_IDS", "STORED_FRAMES", "generate", "render_states"]

SPLIT_IDS: dict[str, int] = {"train": 0, "test": 1, "validation": 2}
MAX_ATTEMPTS = 100
# Frames per sequence of the `hamiltonian_systems` dataset (the papers unroll 30 steps).
STORED_FRAMES = 30


def _check_int(name: str, value, minimum: int) -> int:
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, (int, np.integer))
        or value < minimum
    ):
        raise DataError(f"Invalid {name}={value!r}; allowed: an integer >= {minimum}.", name)
    return int(value)


def render_states(system: PhysicalSystem, q, resolution: int = 32) -> np.ndarray:
    """Frames uint8 [..., H, W, 3] of canonical positions q [..., dim], as the dataset draws them.

    The dataset renders the noisy states (`q_noisy`); rendering the clean `q` gives the frames a
    perfect model of the clean dynamics would produce (the experiments' noise floor).
    """
    return render(
        system.positions(np.asarray(q, dtype=np.float64)),
        extent=system.world_extent,
        body_radius=system.body_radius,
        colours=system.colours,
        resolution=resolution,
    )


def _example_rng(seed: int, split_id: int, index: int, attempt: int) -> np.random.Generator:
    entropy = [seed, split_id, index] if attempt == 0 else [seed, split_id, index, attempt]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _inside_canvas(system: PhysicalSystem, q) -> np.ndarray:
    """[N] bool: every disc of every frame of q [N, T, dim] lies inside the canvas."""
    reach = np.abs(system.positions(q)) + system.body_radius
    return np.all(reach <= system.world_extent, axis=(1, 2, 3))


def generate(
    system: PhysicalSystem | str,
    n: int,
    *,
    seed: int,
    split: str,
    start_index: int = 0,
    n_frames: int = 30,
    dt: float = 0.125,
    resolution: int = 32,
) -> dict[str, np.ndarray]:
    """Generates examples start_index .. start_index + n - 1 of a split.

    Args:
      system: a PhysicalSystem, or a name accepted by `physics.get` (default fields).
      n: number of examples (> 0).
      seed: dataset seed (integer >= 0).
      split: one of SPLIT_IDS ("train", "test", "validation").
      start_index: index of the first example within the split (>= 0).
      n_frames: frames per sequence (> 0).
      dt: time between frames (> 0).
      resolution: picture size, 32 or 64.

    Returns:
      frames uint8 [n, T, H, W, 3], rendered from the noisy positions;
      q, p, q_noisy, p_noisy float32 [n, T, dim];
      energy float32 [n, T]: H of the clean state at each frame's time (computed in float64);
      t float32 [T]; index int64 [n].

    Raises:
      TypeError: `system` is neither a PhysicalSystem nor a string.
      DataError: a bad argument (the message names it, its value and what is allowed).
      RuntimeError: an example stayed off the canvas for MAX_ATTEMPTS attempts.
    """
    if isinstance(system, str):
        from hgn_tf.physics import get  # the registry imports this module

        system = get(system)
    if not isinstance(system, PhysicalSystem):
        raise TypeError(f"Invalid system={system!r}; allowed: a PhysicalSystem or a system name.")
    n = _check_int("n", n, 1)
    n_frames = _check_int("n_frames", n_frames, 1)
    seed = _check_int("seed", seed, 0)
    start_index = _check_int("start_index", start_index, 0)
    if split not in SPLIT_IDS:
        raise DataError(f"Invalid split={split!r}; allowed: {tuple(SPLIT_IDS)}.", "split")
    try:
        dt_value = float(dt)
    except (TypeError, ValueError):
        dt_value = float("nan")
    if not (np.isfinite(dt_value) and dt_value > 0):
        raise DataError(f"Invalid dt={dt!r}; allowed: a finite float > 0.", "dt")
    resolution = check_resolution(resolution)

    dim, split_id = system.dim, SPLIT_IDS[split]
    times = np.arange(n_frames) * dt_value
    index = np.arange(start_index, start_index + n, dtype=np.int64)
    shape = (n, n_frames, dim)
    q, p, q_noisy, p_noisy = (np.empty(shape, dtype=np.float32) for _ in range(4))
    energy = np.empty((n, n_frames), dtype=np.float32)

    attempt = np.zeros(n, dtype=np.int64)
    pending = np.arange(n)
    while pending.size:
        q0 = np.empty((pending.size, dim))
        p0 = np.empty((pending.size, dim))
        noise = np.empty((pending.size, n_frames, 2 * dim))
        for row, j in enumerate(pending):
            rng = _example_rng(seed, split_id, int(index[j]), int(attempt[j]))
            q0[row], p0[row] = (x[0] for x in system.sample_initial(rng, 1))
            noise[row] = rng.standard_normal((n_frames, 2 * dim))
        q_clean, p_clean = system.simulate(q0, p0, times)
        noise *= system.noise_std
        q_obs = (q_clean + noise[..., :dim]).astype(np.float32)
        p_obs = (p_clean + noise[..., dim:]).astype(np.float32)
        q[pending], p[pending] = q_clean, p_clean
        q_noisy[pending], p_noisy[pending] = q_obs, p_obs
        energy[pending] = system.hamiltonian(q_clean, p_clean, times[None, :])
        outside = ~_inside_canvas(system, q_obs.astype(np.float64))
        pending = pending[outside]
        attempt[pending] += 1
        if pending.size and attempt[pending].max() >= MAX_ATTEMPTS:
            worst = int(index[pending[np.argmax(attempt[pending])]])
            raise RuntimeError(
                f"{system.name}: example {worst} of split {split!r} left the canvas in "
                f"{MAX_ATTEMPTS} attempts; increase world_extent (now {system.world_extent}) or "
                f"decrease body_radius (now {system.body_radius}), n_frames or noise_std."
            )

    frames = render_states(system, q_noisy, resolution)
    return {
        "frames": frames,
        "q": q,
        "p": p,
        "q_noisy": q_noisy,
        "p_noisy": p_noisy,
        "energy": energy,
        "t": times.astype(np.float32),
        "index": index,
    }
