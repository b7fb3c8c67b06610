"""RealNVP (Dinh et al., ICLR 2017), the baseline of HGN's Fig. 10, on `tfp.bijectors.RealNVP`.

    z ~ N(0, I_d);   x = c_L o ... o c_1 (z)

Each c_i is an affine coupling: the masked half x_A passes unchanged, the other half becomes
x_B * exp(log_scale(x_A)) + shift(x_A). Masks alternate (coupling i masks the first d // 2
units when i is even, the last ones when i is odd: TFP's negative `num_masked`), so every unit
is transformed. log p(x) = log N(c^-1(x)) + sum_i log|det J_{c_i^-1}|, exact.

The shift/log-scale network is a Keras layer (`ShiftAndLogScale`: a two-layer ReLU MLP, as HGN
A.2, "matched to those used in the leapfrog": 128, 128), not TFP's `real_nvp_default_template`,
which is built on tf1 layers and fails inside Keras models (tensorflow/probability#1261). The
layer's output is initialised at zero (each coupling starts as the identity), and log_scale is
soft-clamped to (-3, 3) by 3 tanh(. / 3) (it keeps early training from overflowing exp).
The bijector works eagerly and inside `tf.function` (tested).
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from hgn_tf.config import dataclass_from_dict
from hgn_tf.errors import ConfigError, check, positive_int

tfb = tfp.bijectors
tfd = tfp.distributions

__all__ = ["RealNVPConfig", "RealNVPFlow", "ShiftAndLogScale"]

_LOG_SCALE_LIMIT = 3.0


@dataclasses.dataclass(frozen=True)
class RealNVPConfig:
    """A RealNVP's architecture.

    Attributes:
        dim: d, the data's dimension (>= 2: a coupling needs two halves).
        coupling_layers: affine couplings, masks alternating (HGN Fig. 10: 2 or 3).
        hidden: hidden widths of each coupling's ReLU MLP (HGN A.2: 128, 128).
    """

    dim: int = 2
    coupling_layers: int = 2
    hidden: tuple[int, ...] = (128, 128)

    def __post_init__(self):
        positive_int("dim", self.dim)
        check(self.dim >= 2, "dim", self.dim, "at least 2 (a coupling splits the units)")
        positive_int("coupling_layers", self.coupling_layers)
        check(isinstance(self.hidden, tuple) and len(self.hidden) > 0
              and all(isinstance(h, int) and not isinstance(h, bool) and h > 0
                      for h in self.hidden),
              "hidden", self.hidden, "a non-empty tuple of positive integers")


@keras.saving.register_keras_serializable(package="hgn_tf")
class ShiftAndLogScale(keras.layers.Layer):
    """(x_A, output_units) -> (shift, log_scale), each [..., units]: TFP RealNVP's callable.

    Args:
        units: the size of the transformed half (TFP passes it as `output_units` on every call;
            a different value is an error, not a silent reshape).
        hidden: hidden widths of the ReLU MLP.
    """

    def __init__(self, units, hidden=(128, 128), **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.hidden = tuple(hidden)
        self.dense = [keras.layers.Dense(h, activation="relu", name=f"dense{i}")
                      for i, h in enumerate(self.hidden)]
        self.out = keras.layers.Dense(2 * self.units, kernel_initializer="zeros", name="out")

    def call(self, x, output_units):
        if output_units != self.units:
            raise ConfigError(f"`output_units` must be {self.units} (this layer's units), got "
                              f"{output_units!r}.", "output_units")
        for layer in self.dense:
            x = layer(x)
        shift, raw = tf.split(self.out(x), 2, axis=-1)
        return shift, _LOG_SCALE_LIMIT * tf.tanh(raw / _LOG_SCALE_LIMIT)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "hidden": self.hidden}


def _tfp_callable(layer):
    """TFP calls fn(x, output_units) positionally; a Keras 3 layer takes non-tensors by keyword."""
    def fn(x, output_units, **condition_kwargs):
        return layer(x, output_units=output_units)
    return fn


@keras.saving.register_keras_serializable(package="hgn_tf")
class RealNVPFlow(keras.Model):
    """RealNVP density model over x in R^d; `fit` on batches x [B, d] maximises log p(x).

    Args:
        config: `RealNVPConfig` (or its dict).
        seed: the seed `sample` starts from when none is given.
    """

    def __init__(self, config: RealNVPConfig | dict | None = None, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = dataclass_from_dict(RealNVPConfig, config)
        self.config = config or RealNVPConfig()
        self.seed = int(seed)
        c = self.config
        masked = c.dim // 2
        self.couplings = [ShiftAndLogScale(c.dim - masked, c.hidden,
                                           name=f"coupling_{i}")
                          for i in range(c.coupling_layers)]
        self.seed_generator = keras.random.SeedGenerator(self.seed, name="sample_seed")
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def bijector(self) -> tfb.Bijector:
        """z -> x: the couplings in order (tfb.Chain applies its last bijector first)."""
        masked = self.config.dim // 2
        layers = [tfb.RealNVP(num_masked=masked if i % 2 == 0 else -masked,
                              shift_and_log_scale_fn=_tfp_callable(net), name=f"coupling_{i}")
                  for i, net in enumerate(self.couplings)]
        return tfb.Chain(layers[::-1])

    def distribution(self) -> tfd.Distribution:
        """The model as a TFP distribution (exact `log_prob`, `sample`)."""
        d = self.config.dim
        base = tfd.MultivariateNormalDiag(loc=tf.zeros(d), scale_diag=tf.ones(d))
        return tfd.TransformedDistribution(base, self.bijector())

    def log_prob(self, x):
        """The exact log density at x [B, d]."""
        return self.distribution().log_prob(tf.convert_to_tensor(x, tf.float32))

    def sample(self, n: int, seed=None):
        """n samples [n, d]; `seed` an int or a stateless seed pair (None: the model's stream)."""
        if seed is None:
            seed = self.seed_generator.next()
        elif isinstance(seed, int):
            seed = tf.constant([seed, 0], tf.int32)
        return self.distribution().sample(n, seed=tf.cast(seed, tf.int32))

    def call(self, x, training=False):
        """log p(x) per x [B] (builds every weight)."""
        return self.log_prob(x)

    def train_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(self.log_prob(x))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        self.loss_tracker.update_state(-tf.reduce_mean(self.log_prob(x)))
        return {"loss": self.loss_tracker.result()}

    @property
    def metrics(self):
        return [self.loss_tracker]

    def build_all(self):
        """Create every weight (before `load_weights`)."""
        self.log_prob(tf.zeros([1, self.config.dim]))
        self.built = True

    def get_config(self):
        return {**super().get_config(), "config": dataclasses.asdict(self.config),
                "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
