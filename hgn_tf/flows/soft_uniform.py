"""The soft-uniform density of HGN section 4 (NHF's prior), normalised, with an exact sampler.

Per coordinate, with width w (the paper's sigma) and sharpness beta:

    pi(s) = sigmoid(beta (s + w/2)) * sigmoid(-beta (s - w/2)) / Z

With u = beta (s + w/2) and c = beta w, sigmoid(u) sigmoid(c - u) = (sigmoid(u) - sigmoid(u - c))
/ (1 - exp(-c)) (expand both sides), whose integral over u is c / (1 - exp(-c)). So

    Z = w / (1 - exp(-beta w))          (-> w as beta -> inf: the uniform on [-w/2, w/2])
    F(s) = (softplus(u) - softplus(u - c)) / c                       (the CDF)
    F^-1(y) = (log(expm1(c y)) - log(-expm1(c (y - 1)))) / beta - w/2

so samples are exact inverse-CDF draws. The density is a TFP `Distribution` (scalar events,
batch shape that of `width`); `tfd.Independent` makes it a prior over a vector.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = ["SoftUniform"]


class SoftUniform(tfd.Distribution):
    """pi(s) proportional to sigmoid(beta (s + width/2)) sigmoid(-beta (s - width/2)).

    Args:
        width: the width of the plateau (HGN's sigma), > 0.
        sharpness: beta, > 0; larger is closer to the uniform on [-width/2, width/2].
    """

    def __init__(self, width, sharpness, validate_args=False, allow_nan_stats=True,
                 name="SoftUniform"):
        parameters = dict(locals())
        with tf.name_scope(name):
            self._width = tf.convert_to_tensor(width, dtype_hint=tf.float32, name="width")
            self._sharpness = tf.convert_to_tensor(sharpness, dtype=self._width.dtype,
                                                   name="sharpness")
        super().__init__(dtype=self._width.dtype,
                         reparameterization_type=tfd.FULLY_REPARAMETERIZED,
                         validate_args=validate_args, allow_nan_stats=allow_nan_stats,
                         parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(width=tfp.util.ParameterProperties(), sharpness=tfp.util.ParameterProperties())

    @property
    def width(self):
        return self._width

    @property
    def sharpness(self):
        return self._sharpness

    def _batch_shape(self):
        return tf.broadcast_static_shape(self._width.shape, self._sharpness.shape)

    def _batch_shape_tensor(self):
        return tf.broadcast_dynamic_shape(tf.shape(self._width), tf.shape(self._sharpness))

    def _event_shape(self):
        return tf.TensorShape([])

    def _event_shape_tensor(self):
        return tf.constant([], tf.int32)

    def _log_normaliser(self):
        c = self._sharpness * self._width
        return tf.math.log(self._width) - tf.math.log(-tf.math.expm1(-c))

    def _log_prob(self, x):
        b, half = self._sharpness, self._width / 2
        return (tf.math.log_sigmoid(b * (x + half)) + tf.math.log_sigmoid(-b * (x - half))
                - self._log_normaliser())

    def _cdf(self, x):
        b, c = self._sharpness, self._sharpness * self._width
        u = b * (x + self._width / 2)
        return (tf.math.softplus(u) - tf.math.softplus(u - c)) / c

    def _sample_n(self, n, seed=None):
        shape = tf.concat([[n], self._batch_shape_tensor()], 0)
        y = tf.random.stateless_uniform(shape, seed=tfp.random.sanitize_seed(seed),
                                        minval=1e-7, maxval=1.0 - 1e-7, dtype=self.dtype)
        b, w = self._sharpness, self._width
        c = b * w
        u = tf.math.log(tf.math.expm1(c * y)) - tf.math.log(-tf.math.expm1(c * (y - 1.0)))
        return u / b - w / 2
