"""2-D target densities with samplers and exact log densities (HGN Fig. 10 and two harder ones).

    mog     the mixture of Gaussians of HGN's Fig. 10. The paper prints no parameters; ours is a
            2 x 2 grid of equal-weight isotropic Gaussians at (+-1.5, +-1.5), std 0.4.
    ring    eight equal-weight isotropic Gaussians evenly spaced on a circle of radius 2, std 0.2.
    moons   two moons: the two half circles of scikit-learn's `make_moons` (radius 1, the second
            shifted by (1, 0.5) and flipped), centred at the origin and scaled by 1.5, plus
            isotropic Gaussian noise of std 0.15 (after scaling).

`mog` and `ring` are TFP `MixtureSameFamily` distributions: sampler and log density are TFP's.

`moons` has no closed form. With u(t) the point at angle t of one arc (t uniform on [0, pi]) and
noise N(0, s^2 I), its density is exactly

    p(x) = 1/2 sum_{k=1,2} (1/pi) int_0^pi N(x; u_k(t), s^2 I) dt,

a smooth periodic-free integral over t, evaluated by Gauss-Legendre quadrature with
`MOONS_QUADRATURE_NODES` (256) nodes per arc, i.e. as a 512-component Gaussian mixture with the
quadrature weights: no KDE, no histogram. The integrand varies on the scale s / r = 0.1 rad, so
the quadrature error is far below float32 rounding (a test compares it with 4x more nodes: the
log densities agree to 1e-6). The sampler draws t uniformly (not from the nodes).

Every density answers `sample(n, seed)` ([n, 2] float32, `seed` an int or a stateless seed pair)
and `log_prob(x)` ([n]); `distribution` is the TFP distribution whose `log_prob` is used.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from hgn_tf.errors import ConfigError

tfd = tfp.distributions

__all__ = ["DENSITY_NAMES", "MOONS_QUADRATURE_NODES", "TargetDensity", "get"]

MOONS_QUADRATURE_NODES = 256
_MOONS_SCALE = 1.5
_MOONS_NOISE = 0.15
# sklearn's moons: arc 1 = (cos t, sin t), arc 2 = (1 - cos t, 0.5 - sin t), t in [0, pi];
# their union's bounding box is centred at (0.5, 0.25).
_MOONS_CENTRE = (0.5, 0.25)


def _seed(seed):
    """An int seed as a stateless seed pair; a pair (tensor or list) as it is."""
    if isinstance(seed, int):
        return tf.constant([seed, 0], tf.int32)
    return tf.cast(seed, tf.int32)


def _isotropic_mixture(locs, scale) -> tfd.Distribution:
    locs = np.asarray(locs, np.float32)
    return tfd.MixtureSameFamily(
        tfd.Categorical(logits=tf.zeros(len(locs))),
        tfd.MultivariateNormalDiag(loc=locs, scale_diag=tf.fill(locs.shape, np.float32(scale))),
    )


def _arc(t, arc: int):
    """The noiseless moons point(s) at angle(s) t on arc 0 or 1, centred and scaled."""
    if arc == 0:
        x, y = np.cos(t), np.sin(t)
    else:
        x, y = 1.0 - np.cos(t), 0.5 - np.sin(t)
    return np.stack([(x - _MOONS_CENTRE[0]) * _MOONS_SCALE,
                     (y - _MOONS_CENTRE[1]) * _MOONS_SCALE], axis=-1)


def moons_quadrature_mixture(nodes: int = MOONS_QUADRATURE_NODES) -> tfd.Distribution:
    """The moons density as a Gauss-Legendre quadrature over each arc's angle (see module doc)."""
    x, w = np.polynomial.legendre.leggauss(nodes)  # on [-1, 1], weights sum to 2
    t = (x + 1.0) * (math.pi / 2)                  # on [0, pi]
    weights = w / 2.0                              # (1/pi) dt = (1/pi)(pi/2) dx -> w / 2
    locs = np.concatenate([_arc(t, 0), _arc(t, 1)]).astype(np.float64)
    probs = np.concatenate([weights, weights]) / 2.0
    return tfd.MixtureSameFamily(
        tfd.Categorical(logits=tf.constant(np.log(probs), tf.float32)),
        tfd.MultivariateNormalDiag(loc=tf.constant(locs, tf.float32),
                                   scale_diag=tf.fill(locs.shape, np.float32(_MOONS_NOISE))),
    )


@dataclasses.dataclass(frozen=True)
class TargetDensity:
    """A 2-D target: a sampler and its exact log density.

    Attributes:
        name: one of `DENSITY_NAMES`.
        distribution: the TFP distribution whose `log_prob` is the exact log density.
        extent: (lo, hi), a square window holding (nearly) all its mass, for pictures and grids.
    """

    name: str
    distribution: tfd.Distribution
    extent: tuple[float, float]

    def sample(self, n: int, seed=0) -> tf.Tensor:
        """n samples, [n, 2] float32; `seed` an int or a stateless seed pair."""
        seed = _seed(seed)
        if self.name != "moons":
            return self.distribution.sample(n, seed=seed)
        # Continuous angles (the quadrature is only for the density).
        s_arc, s_t, s_noise = tf.unstack(tfp.random.split_seed(seed, 3))
        arc = tf.random.stateless_uniform([n], s_arc, maxval=2, dtype=tf.int32)
        t = tf.random.stateless_uniform([n], s_t, maxval=math.pi)
        x = tf.where(arc[:, None] == 0, tf.stack([tf.cos(t), tf.sin(t)], -1),
                     tf.stack([1.0 - tf.cos(t), 0.5 - tf.sin(t)], -1))
        x = (x - tf.constant(_MOONS_CENTRE)) * _MOONS_SCALE
        return x + _MOONS_NOISE * tf.random.stateless_normal([n, 2], s_noise)

    def log_prob(self, x) -> tf.Tensor:
        """The exact log density at x [n, 2] (the moons: to quadrature accuracy, see above)."""
        return self.distribution.log_prob(tf.cast(x, tf.float32))


def _mog():
    locs = [(a, b) for a in (-1.5, 1.5) for b in (-1.5, 1.5)]
    return TargetDensity("mog", _isotropic_mixture(locs, 0.4), (-4.0, 4.0))


def _ring():
    angles = 2 * np.pi * np.arange(8) / 8
    locs = np.stack([2.0 * np.cos(angles), 2.0 * np.sin(angles)], -1)
    return TargetDensity("ring", _isotropic_mixture(locs, 0.2), (-4.0, 4.0))


def _moons():
    return TargetDensity("moons", moons_quadrature_mixture(), (-4.0, 4.0))


_DENSITIES = {"mog": _mog, "moons": _moons, "ring": _ring}
DENSITY_NAMES = tuple(_DENSITIES)


def get(name: str) -> TargetDensity:
    """The target density called `name` (one of `DENSITY_NAMES`).

    Raises:
        ConfigError: for another name.
    """
    if name not in _DENSITIES:
        raise ConfigError(f"`density` must be one of {DENSITY_NAMES}, got {name!r}.", "density")
    return _DENSITIES[name]()
