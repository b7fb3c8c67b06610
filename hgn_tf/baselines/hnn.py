"""Hamiltonian Neural Network and the baseline MLP (Greydanus et al. 2019), Keras models.

Both read a state x = (q, p) in R^(2n) and output its time derivative; both are trained with
`model.fit` on pairs (x, dx/dt) with the mean squared error (the official `L2_loss`):

    baseline MLP:  f(x) = MLP(x)                                   (output size 2n)
    HNN:           H(x) = MLP(x)                                   (output size 1)
                   f(x) = (dH/dp, -dH/dq)                          (tf.GradientTape)
    loss           = mean_{batch, components} (f(x) - dx/dt)^2 + weight decay

MLP (official nn_models.MLP): Dense(hidden, tanh) x `layers`, then Dense(out) without bias; every
kernel orthogonally initialised, biases zero. Weight decay as PyTorch's Adam(weight_decay=wd),
which adds wd * theta to every gradient: an L2 penalty (wd / 2) |theta|^2 on kernels and biases,
added in the models' `train_step` (Keras's own `weight_decay` is AdamW's decoupled decay).
Everything runs in float64, so the learned field is smooth to ~1e-16 and an adaptive ODE solver
at rtol 1e-12 is not fooled by float32 rounding.

`energy(x)` is the HNN's learned H. `field_function(model)` is the learned field as a NumPy
callable for the ODE solver of `hgn_tf.baselines.evaluate`.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import keras
import numpy as np
import tensorflow as tf

from hgn_tf.errors import ConfigError, check, positive_int

__all__ = ["MODEL_KINDS", "BaselineMLP", "HNN", "HNNConfig", "build", "field_function",
           "fit", "load", "save"]

MODEL_KINDS = ("hnn", "baseline")


@dataclasses.dataclass(frozen=True)
class HNNConfig:
    """An HNN or baseline MLP.

    Attributes:
      kind: "hnn" (the network outputs H) or "baseline" (it outputs dx/dt).
      state_dim: size of x = (q, p), even.
      hidden, layers, activation: the MLP (official: 200, 2, tanh).
      weight_decay: PyTorch-style L2 weight decay (spring/pendulum/three-body 1e-4, two-body 0).
      seed: seeds the orthogonal initialisers.
    """

    kind: str = "hnn"
    state_dim: int = 2
    hidden: int = 200
    layers: int = 2
    activation: str = "tanh"
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self):
        check(self.kind in MODEL_KINDS, "kind", self.kind, f"one of {MODEL_KINDS}")
        positive_int("state_dim", self.state_dim)
        check(self.state_dim % 2 == 0, "state_dim", self.state_dim, "even (x = (q, p))")
        positive_int("hidden", self.hidden)
        positive_int("layers", self.layers)
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "a float >= 0")


def _mlp(config: HNNConfig, out: int, name: str) -> keras.Sequential:
    layers = [keras.Input((config.state_dim,), dtype="float64")]
    for i in range(config.layers):
        layers.append(keras.layers.Dense(
            config.hidden, activation=config.activation, dtype="float64",
            kernel_initializer=keras.initializers.Orthogonal(seed=config.seed * 100 + i),
            name=f"hidden_{i}"))
    layers.append(keras.layers.Dense(
        out, use_bias=False, dtype="float64", name="out",
        kernel_initializer=keras.initializers.Orthogonal(seed=config.seed * 100 + config.layers)))
    return keras.Sequential(layers, name=name)


def weight_decay_term(variables, weight_decay: float, dtype):
    """(weight_decay / 2) sum_theta |theta|^2 in `dtype`: PyTorch's Adam `weight_decay` (an L2
    term whose gradient is weight_decay * theta)."""
    if not weight_decay or not variables:
        return tf.zeros([], dtype)
    return 0.5 * weight_decay * tf.add_n(
        [tf.cast(tf.reduce_sum(tf.square(v)), dtype) for v in variables])


def with_weight_decay(loss, variables, weight_decay: float):
    """loss + `weight_decay_term` of `variables`, in the loss's dtype."""
    return loss + weight_decay_term(variables, weight_decay, loss.dtype)


class _FieldModel(keras.Model):
    """A model x -> dx/dt trained on the field's MSE plus PyTorch-style weight decay.

    train_step: loss = mean (f(x) - dx/dt)^2 + (weight_decay / 2) sum_theta |theta|^2; the
    tracked metric `field_mse` is the first term only.
    """

    def __init__(self, config: HNNConfig, **kwargs):
        super().__init__(dtype="float64", **kwargs)
        self.config = config
        self.field_mse = keras.metrics.Mean(name="field_mse", dtype="float64")

    @property
    def metrics(self):
        return [self.field_mse]

    def _mse(self, x, dxdt):
        return tf.reduce_mean(tf.square(self(x, training=True) - tf.cast(dxdt, tf.float64)))

    def train_step(self, data):
        x, dxdt = data
        with tf.GradientTape() as tape:
            mse = self._mse(x, dxdt)
            loss = with_weight_decay(mse, self.trainable_variables, self.config.weight_decay)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        self.field_mse.update_state(mse)
        return {"field_mse": self.field_mse.result()}

    def test_step(self, data):
        x, dxdt = data
        self.field_mse.update_state(self._mse(x, dxdt))
        return {"field_mse": self.field_mse.result()}

    def get_config(self):
        return dataclasses.asdict(self.config)


class BaselineMLP(_FieldModel):
    """f(x) = MLP(x): the time derivative directly, no structure."""

    def __init__(self, config: HNNConfig, **kwargs):
        super().__init__(config, **kwargs)
        self.net = _mlp(config, config.state_dim, "mlp")

    def call(self, x):
        return self.net(tf.cast(x, tf.float64))


class HNN(_FieldModel):
    """f(x) = (dH/dp, -dH/dq) of a learned scalar H(x) = MLP(x).

    `network`: any layer [B, 2n] -> [B, 1] to use as H instead of the MLP (the tests plug the
    true Hamiltonian in).
    """

    def __init__(self, config: HNNConfig, network: keras.layers.Layer | None = None, **kwargs):
        super().__init__(config, **kwargs)
        self.net = _mlp(config, 1, "hamiltonian") if network is None else network

    def energy(self, x):
        """The learned H [B] at states x [B, 2n]."""
        return self.net(tf.cast(x, tf.float64))[..., 0]

    def call(self, x):
        x = tf.cast(x, tf.float64)
        with tf.GradientTape() as tape:
            tape.watch(x)
            h = self.energy(x)
        grad = tape.gradient(h, x)
        n = self.config.state_dim // 2
        return tf.concat([grad[..., n:], -grad[..., :n]], axis=-1)


def build(config: HNNConfig) -> HNN | BaselineMLP:
    """The model `config.kind` names, built (its weights exist)."""
    model = (HNN if config.kind == "hnn" else BaselineMLP)(config)
    model(np.zeros((1, config.state_dim)))
    return model


def fit(model, x, dxdt, *, steps: int, batch_size: int | None = None, test=None,
        learning_rate: float = 1e-3, log_every: int = 100, seed: int = 0) -> dict:
    """Adam on the MSE of the field, `steps` steps of `batch_size` points (None: all).

    Args:
      x, dxdt: training points [P, 2n] (trajectories flattened).
      test: (x, dxdt) scored after every `log_every` steps, or None.
    Returns:
      {"step": [...], "loss": [...], "test_loss": [...]} (the loss excludes the weight decay).
    """
    positive_int("steps", steps)
    x, dxdt = np.asarray(x, np.float64), np.asarray(dxdt, np.float64)
    test = None if test is None else tuple(np.asarray(a, np.float64) for a in test)
    n = len(x)
    batch = n if batch_size is None else min(positive_int("batch_size", batch_size), n)
    ds = (tf.data.Dataset.from_tensor_slices((x, dxdt))
          .shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat()
          .batch(batch, drop_remainder=True).prefetch(2))
    log_every = min(log_every, steps)
    # Many steps per tf.function call: the Python loop of `fit` costs more than a step of
    # these small networks.
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), steps_per_execution=log_every)
    hist = model.fit(ds, epochs=steps // log_every, steps_per_epoch=log_every, verbose=0,
                     shuffle=False,
                     validation_data=test, validation_batch_size=len(test[0]) if test else None)
    out = {"step": [log_every * (i + 1) for i in range(len(hist.history["field_mse"]))],
           "loss": [float(v) for v in hist.history["field_mse"]]}
    if test is not None:
        out["test_loss"] = [float(v) for v in hist.history["val_field_mse"]]
    return out


def field_function(model):
    """The learned field as NumPy: x [M, 2n] float64 -> dx/dt [M, 2n] float64."""
    dim = model.config.state_dim
    fn = tf.function(model.call, input_signature=[tf.TensorSpec([None, dim], tf.float64)],
                     reduce_retracing=True)

    def field(x):
        x = np.asarray(x, np.float64)
        return np.reshape(fn(x).numpy(), x.shape)

    return field


def save(model, folder) -> pathlib.Path:
    """`folder`/<kind>.json (the config) and `folder`/<kind>.weights.h5."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kind = model.config.kind
    (folder / f"{kind}.json").write_text(json.dumps(dataclasses.asdict(model.config), indent=1))
    model.save_weights(folder / f"{kind}.weights.h5")
    return folder


def load(folder, kind: str):
    """The model `save` wrote to `folder` for `kind`."""
    path = pathlib.Path(folder) / f"{kind}.json"
    if not path.is_file():
        raise ConfigError(f"`folder` {str(folder)!r} holds no {kind}.json.", "folder")
    model = build(HNNConfig(**json.loads(path.read_text())))
    model.load_weights(pathlib.Path(folder) / f"{kind}.weights.h5")
    return model
