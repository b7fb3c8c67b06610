"""Reading the physical state back from frames: the renderer inverted (NumPy only).

    read_positions(frames, system)       disc centres [..., B, 2] (world) and confidence [..., B]
    read_state(frames, system, dt)       a `Readback`: positions, confidence, q, dq/dt, p, the
                                         conserved energy and the constraint residual over time
    finite_difference(x, dt)             d/dt along the time axis (4th order by default)
    unproject(pixels, extent, res)       the inverse of `render.project`

Unmixing. `render.render` paints body b (in body order) "over" the image with coverage a_b:
image <- image + a_b (c_b - image). On the background g the result is

    pixel - g = sum_b w_b (c_b - g),      w_b = a_b prod_{b' > b} (1 - a_b')

so with D = [c_0 - g, ..., c_{B-1} - g] (3 x B; full column rank for base.BODY_COLOURS, B <= 3)
the weights are w = pinv(D) (pixel - g), exact up to the uint8 rounding (0.5/255 per channel, a
few 1e-3 in w). The coverages follow from the top body down: a_{B-1} = w_{B-1}, then
a_b = w_b / prod_{b' > b} (1 - a_b') where that cover is above 1/4 (where a body is hidden by
more than 3/4 its coverage cannot be recovered and w_b is kept). Frames may be uint8 or float in
[0, 1] (a model's output); g is the renderer's background as stored in uint8, rint(255 g) / 255.

Centroid. For each body (pixel coordinates of `render.project`: pixel [i, j] is centred at
(j + 0.5, i + 0.5)):

  1. coarse: the a-weighted centroid of the pixels with a >= min(1/4, max(a) / 2), so faint haze
     elsewhere in the frame does not pull it;
  2. fine, 4 passes: the centroid of a, clipped to [0, 1], over the pixels within
     R_px + 3 sigma_px + 1 of the previous estimate (the renderer's alpha is 0 beyond
     R_px + 3 sigma_px, so the window holds the whole disc and nothing far from it). Where the body
     is hidden (the cover above it is <= 1/4), a is the renderer's own profile
     erfc((d - R_px) / (sigma_px sqrt(2))) / 2 about the previous estimate: without that fill a
     three_body frame with overlapping discs was read 0.6 pixel off, with it < 0.05.

On a clean frame the fine centroid is the renderer's intensity-weighted centroid, within ~0.01
pixel of the projected centre (render.py). Confidence = (the summed a in that window - the summed
a above NOISE_LEVEL outside it) / the summed alpha of one disc alone (the renderer's own: one disc
rendered at 16 sub-pixel offsets and unmixed the same way, ~pi (R_px^2 + sigma_px^2)). So it is
~1 for a body drawn as the renderer draws it, 0 on a blank frame, about the share drawn for a
faded body, below 1 for a smeared or hidden one, and negative for the body's colour spread over
the frame (an untrained decoder's uniform haze held a disc's worth of coverage in any window).
A frame with no pixel of a body above `NOISE_LEVEL` gives that body NaN position, confidence 0.

From positions to the state (`read_state`): q = system.coordinates(positions), unwrapped in time
for angles; dq/dt by finite differences (central, 4th order: the error of the 2nd-order central
difference, (w dt)^2 / 6 of the velocity, is 1.6% for the pendulum at dt = 0.125, which would
swamp the energy drift we measure; the 4th-order error is (w dt)^4 / 30 ~ 3e-4); p =
system.momenta(q, dq/dt, t) and the energy system.conserved_energy(q, p, t) (H, or the damped
oscillator's invariant); the constraint residual where the system has rods.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy.special import erfc

from hgn_tf.errors import DataError
from hgn_tf.physics.base import PhysicalSystem
from hgn_tf.physics.render import (
    DEFAULT_BACKGROUND,
    DEFAULT_SOFTNESS,
    check_resolution,
    render,
)

__all__ = [
    "FOUND_THRESHOLD",
    "NOISE_LEVEL",
    "Readback",
    "finite_difference",
    "read_positions",
    "read_state",
    "unproject",
]

# A body counts as found in a frame when its confidence is at least this.
FOUND_THRESHOLD = 0.5
# Coverage below this is noise (a uint8 level is 1/255; a model's haze is a few 1e-2).
NOISE_LEVEL = 0.05
_COARSE_LEVEL = 0.25
_MIN_COVER = 0.25
_FINE_PASSES = 4
_CHUNK_FRAMES = 1024


def unproject(pixels, extent: float, resolution: int) -> np.ndarray:
    """Float pixel coordinates [..., 2] (col, row) -> world coordinates [..., 2] (x, y).

    The inverse of `render.project`: x = (2 col / resolution - 1) extent,
    y = (1 - 2 row / resolution) extent.
    """
    pixels = np.asarray(pixels, dtype=np.float64)
    half = check_resolution(resolution) / 2
    return np.stack([(pixels[..., 0] / half - 1) * extent, (1 - pixels[..., 1] / half) * extent],
                    axis=-1)


def _float_frames(frames) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames.astype(np.float32) / np.float32(255)
    if not np.issubdtype(frames.dtype, np.floating):
        raise DataError(f"`frames` must be uint8 or float in [0, 1], got dtype {frames.dtype}.",
                        "frames")
    return frames.astype(np.float32)


def _resolution(frames: np.ndarray) -> int:
    if frames.ndim < 3 or frames.shape[-1] != 3 or frames.shape[-3] != frames.shape[-2]:
        raise DataError(f"`frames` must be square RGB images [..., H, H, 3], got shape "
                        f"{list(frames.shape)}.", "frames")
    return check_resolution(int(frames.shape[-2]))


def _unmixing(colours) -> tuple[np.ndarray, np.ndarray]:
    """(background [3] as stored in uint8, pinv(D) [B, 3]) for body colours [B, 3]."""
    background = np.rint(np.asarray(DEFAULT_BACKGROUND) * 255) / 255
    diffs = np.asarray(colours, dtype=np.float64) - background  # [B, 3]
    return background.astype(np.float32), np.linalg.pinv(diffs.T).astype(np.float32)


def _coverage(frames: np.ndarray, colours) -> tuple[np.ndarray, np.ndarray]:
    """Coverage [F, H, W, B] of each body, and where it is hidden [F, H, W, B] bool (module
    docstring, "Unmixing")."""
    background, unmix = _unmixing(colours)
    w = (frames - background) @ unmix.T
    a = np.empty_like(w)
    hidden = np.empty(w.shape, bool)
    cover = np.ones(w.shape[:-1], np.float32)
    for b in reversed(range(w.shape[-1])):
        hidden[..., b] = cover <= _MIN_COVER
        a[..., b] = w[..., b] / np.where(hidden[..., b], 1, cover)
        cover = cover * (1 - np.clip(a[..., b], 0, 1))
    return a, hidden


@dataclasses.dataclass(frozen=True)
class _Disc:
    """One disc as the renderer draws it at this picture geometry (pixel units)."""

    radius: float  # R_px
    sigma: float  # sigma_px: the blur of the edge
    window: float  # R_px + 3 sigma_px + 1: the fine centroid's window radius
    mass: float  # the summed alpha of one disc alone

    def alpha(self, d2: np.ndarray) -> np.ndarray:
        """The renderer's coverage at squared distance d2 from the centre (render.py)."""
        d = np.sqrt(d2)
        a = erfc((d - self.radius) / (self.sigma * np.sqrt(2))) / 2
        return np.where(d < self.radius + 3 * self.sigma, a, 0).astype(np.float32)


@functools.lru_cache(maxsize=32)
def _disc(extent: float, body_radius: float, resolution: int,
          colour: tuple[float, ...]) -> _Disc:
    radius = body_radius * resolution / (2 * extent)
    sigma = DEFAULT_SOFTNESS * radius
    offsets = (np.arange(16) // 4, np.arange(16) % 4)
    centre = np.stack([offsets[0] / 4, offsets[1] / 4], axis=-1) * 2 * extent / resolution
    frames = render(centre[:, None, :], extent=extent, body_radius=body_radius,
                    colours=[colour], resolution=resolution)
    mass = _coverage(_float_frames(frames), [colour])[0].sum(axis=(1, 2, 3)).mean()
    return _Disc(radius=radius, sigma=sigma, window=radius + 3 * sigma + 1, mass=float(mass))


def _centroids(a: np.ndarray, hidden: np.ndarray, disc: _Disc) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centroids [F, B, 2] and present-minus-stray coverage [F, B] of coverages a.

    Where a body is hidden under the bodies painted after it, its coverage is unknown: the fine
    passes fill it with the disc's own profile about the current estimate.
    """
    a, hidden = np.moveaxis(a, -1, 1), np.moveaxis(hidden, -1, 1)  # [F, B, H, W]
    h = a.shape[-1]
    centres = np.arange(h, dtype=np.float32) + np.float32(0.5)
    cols, rows = centres[None, None, None, :], centres[None, None, :, None]
    peak = a.max(axis=(2, 3), keepdims=True)
    coarse = np.where((a >= np.minimum(_COARSE_LEVEL, peak / 2)) & (peak > NOISE_LEVEL), a, 0)
    clipped = np.clip(a, 0, 1)

    def centroid(weights):
        mass = weights.sum(axis=(2, 3), dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            col = (weights * cols).sum(axis=(2, 3), dtype=np.float64) / mass
            row = (weights * rows).sum(axis=(2, 3), dtype=np.float64) / mass
        return col, row, mass

    col, row, mass = centroid(coarse)
    for _ in range(_FINE_PASSES):
        d2 = ((cols - col[..., None, None].astype(np.float32)) ** 2
              + (rows - row[..., None, None].astype(np.float32)) ** 2)
        filled = np.where(hidden, disc.alpha(d2), clipped)
        col, row, mass = centroid(np.where(d2 <= disc.window**2, filled, 0))
    outside = (d2 > disc.window**2) & ~hidden & (clipped > NOISE_LEVEL)
    stray = np.where(outside, clipped, 0).sum(axis=(2, 3), dtype=np.float64)
    return np.stack([col, row], axis=-1), np.nan_to_num(mass) - stray


def read_positions(frames, system: PhysicalSystem) -> tuple[np.ndarray, np.ndarray]:
    """Each body's disc centre and confidence, read off frames drawn like `system`'s.

    Args:
      frames: [..., H, H, 3], uint8 or float in [0, 1]; H one of render.SUPPORTED_RESOLUTIONS.
      system: the system whose colours, world_extent and body_radius drew the frames.

    Returns:
      (positions, confidence): world coordinates float64 [..., B, 2] (NaN where a body has no
      pixel above NOISE_LEVEL) and float64 [..., B] (module docstring; ~1 on true frames).

    Raises:
      DataError: frames of another shape or dtype.
    """
    frames = np.asarray(frames)
    resolution = _resolution(frames)
    leading = frames.shape[:-3]
    flat = frames.reshape((-1,) + frames.shape[-3:])
    disc = _disc(system.world_extent, system.body_radius, resolution, tuple(system.colours[0]))
    pixels, masses = [], []
    for start in range(0, len(flat), _CHUNK_FRAMES):
        a, hidden = _coverage(_float_frames(flat[start : start + _CHUNK_FRAMES]), system.colours)
        p, m = _centroids(a, hidden, disc)
        pixels.append(p)
        masses.append(m)
    b = system.n_bodies
    pixels = np.concatenate(pixels) if pixels else np.zeros((0, b, 2))
    masses = np.concatenate(masses) if masses else np.zeros((0, b))
    positions = unproject(pixels, system.world_extent, resolution)
    return (positions.reshape(leading + (b, 2)), (masses / disc.mass).reshape(leading + (b,)))


def finite_difference(x, dt: float, *, axis: int = 1, order: int = 4) -> np.ndarray:
    """dx/dt along `axis` from samples dt apart: a central stencil of order+1 points.

    Interior points use the centred stencil (order 2: (x[i+1] - x[i-1]) / (2 dt); order 4:
    (-x[i+2] + 8 x[i+1] - 8 x[i-1] + x[i-2]) / (12 dt)); the first and last order/2 points use the
    nearest order+1 points, one-sided, of the same order. Fewer than order+1 samples: the highest
    order they allow. The weights solve the Vandermonde system sum_k w_k s_k^j = [j == 1].
    A NaN sample (a body not seen) makes NaN only the derivatives whose stencil uses it.

    Raises:
      DataError: `order` not a positive even integer, dt not > 0, or fewer than 2 samples.
    """
    x = np.asarray(x, dtype=np.float64)
    if not (isinstance(order, int) and order > 0 and order % 2 == 0):
        raise DataError(f"`order` must be a positive even integer, got {order!r}.", "order")
    if not (np.isfinite(dt) and dt > 0):
        raise DataError(f"`dt` must be a finite number > 0, got {dt!r}.", "dt")
    n = x.shape[axis]
    if n < 2:
        raise DataError(f"`x` needs at least 2 samples along axis {axis}, got {n}.", "x")
    points = min(order + 1, n)
    weights = np.zeros((n, n))
    for i in range(n):
        start = min(max(i - points // 2, 0), n - points)
        s = np.arange(start, start + points) - i
        rhs = np.zeros(points)
        rhs[1] = 1
        weights[i, start : start + points] = np.linalg.solve(
            np.vander(s, increasing=True).T.astype(np.float64), rhs)
    moved = np.moveaxis(x, axis, 0)
    missing = ~np.isfinite(moved)  # NaN only where a stencil uses a missing sample (not 0 * NaN)
    derivative = np.tensordot(weights, np.where(missing, 0, moved), axes=(1, 0)) / dt
    touched = np.tensordot((weights != 0).astype(np.float64), missing, axes=(1, 0)) > 0
    return np.moveaxis(np.where(touched, np.nan, derivative), 0, axis)


def _unwrap(angles: np.ndarray) -> np.ndarray:
    """np.unwrap along axis 1, across frames with NaN (a body not seen): each finite angle is
    unwrapped against the last finite one before it."""
    filled = angles.copy()
    for k in range(1, filled.shape[1]):
        filled[:, k] = np.where(np.isfinite(filled[:, k]), filled[:, k], filled[:, k - 1])
    unwrapped = np.unwrap(np.nan_to_num(filled), axis=1)
    return np.where(np.isfinite(angles), unwrapped, np.nan)


@dataclasses.dataclass(frozen=True)
class Readback:
    """The state of N sequences of T frames, read back from the pictures.

    Attributes:
      positions: world coordinates [N, T, B, 2] of each disc centre (NaN: no pixel of the body).
      confidence: [N, T, B] (see the module docstring).
      found: [N, T] bool: every body's confidence >= the threshold `read_state` was given.
      q, qdot, p: [N, T, dim]: coordinates, their finite-difference velocities and the momenta.
      energy: [N, T]: system.conserved_energy(q, p, t) (H, or the damped oscillator's invariant).
      constraint_residual: [N, T, C] (world units) or None for a system without constraints.
      times: [T].
    """

    positions: np.ndarray
    confidence: np.ndarray
    found: np.ndarray
    q: np.ndarray
    qdot: np.ndarray
    p: np.ndarray
    energy: np.ndarray
    constraint_residual: np.ndarray | None
    times: np.ndarray


def read_state(frames, system: PhysicalSystem, dt: float, *, t0: float = 0.0,
               found_threshold: float = FOUND_THRESHOLD, order: int = 4) -> Readback:
    """Positions, velocities, momenta and the true energy of sequences, read from their frames.

    Args:
      frames: [N, T, H, H, 3] uint8 or float in [0, 1], drawn like `system`'s (T >= 2).
      system: the system that (should have) produced them.
      dt: time between frames (> 0); frame k is at t0 + k dt (the damped oscillator's H depends
        on t; our datasets start at t0 = 0).
      found_threshold: the confidence at which a body counts as found.
      order: the order of the finite differences for dq/dt.

    Returns:
      a `Readback`. Frames where a body is missing give NaN q, p and energy near them.
    """
    frames = np.asarray(frames)
    if frames.ndim != 5:
        raise DataError(f"`frames` must be [N, T, H, W, 3], got shape {list(frames.shape)}.",
                        "frames")
    positions, confidence = read_positions(frames, system)
    times = t0 + dt * np.arange(frames.shape[1])
    q = system.coordinates(positions)
    if system.angles:
        q = _unwrap(q)
    qdot = finite_difference(q, dt, axis=1, order=order)
    t = np.broadcast_to(times[None, :], q.shape[:2])
    ok = np.isfinite(q).all(axis=-1) & np.isfinite(qdot).all(axis=-1)
    p = np.full_like(q, np.nan)
    p[ok] = system.momenta(q[ok], qdot[ok], t[ok])
    energy = np.full(q.shape[:2], np.nan)
    energy[ok] = system.conserved_energy(q[ok], p[ok], t[ok])
    return Readback(
        positions=positions,
        confidence=confidence,
        found=(confidence >= found_threshold).all(axis=-1),
        q=q,
        qdot=qdot,
        p=p,
        energy=energy,
        constraint_residual=system.constraint_residual(positions),
        times=times,
    )
