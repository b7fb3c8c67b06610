"""PixelHNN (Greydanus et al. 2019, section 5; official experiment-pixels): an HNN in the latent
space of an MLP autoencoder, trained on pairs of consecutive inputs.

An input carries a position and a velocity: the official x_t = [frame_t, frame_t - frame_t-1],
flattened and concatenated (`pixel_run.inputs`). With the encoder E, decoder D and an HNN f on
the latent z = (z_q, z_p) in R^(2k) (k = latent_dim / 2):

    z = E(x_t),  z' = E(x_t+1),  x_hat = D(z)
    AE   = mean (x_t - x_hat)^2                                 (autoencoder)
    CC   = mean (z_p - (z'_q - z_q))^2                          (canonical coordinates:
                                                                 p_t = q_t+1 - q_t)
    HNN  = mean (z' - (z + f(z)))^2                             (one Euler step, dt = 1)
    loss = w_ae AE + w_cc CC + w_hnn HNN + (weight_decay / 2) |theta|^2

Official weights (1, 1, 0.1), weight decay 1e-5, Adam 1e-3, batch 200. Encoder: Dense(hidden,
relu) x 3 -> Dense(latent); decoder: Dense(hidden, relu) x 3 -> Dense(pixels) (the official
MLPAutoencoder); the HNN is `hgn_tf.baselines.hnn.HNN` (200 tanh units) on the latent.

The loss weights are non-trainable variables, so a staged schedule changes them between `fit`
calls without retracing. `STAGED` is the TF reproduction's (seed 002, section 3.6): the
autoencoder alone, then the CC term at 0.1, 0.5, 1, then the HNN term at 0.1, 0.5, 1 (its
learning-rate drops, made by hand on loss fluctuations, are not reproduced).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from hgn_tf.baselines.hnn import HNN, HNNConfig, weight_decay_term
from hgn_tf.errors import check, positive_int

__all__ = ["OFFICIAL", "STAGED", "PixelHNN", "PixelHNNConfig", "WeightedTermsModel",
           "fit_schedule", "loss_terms"]

# (fraction of the steps, w_ae, w_cc, w_hnn) per stage.
OFFICIAL = ((1.0, 1.0, 1.0, 0.1),)
STAGED = ((0.25, 1.0, 0.0, 0.0), (0.1, 1.0, 0.1, 0.0), (0.1, 1.0, 0.5, 0.0),
          (0.1, 1.0, 1.0, 0.0), (0.15, 1.0, 1.0, 0.1), (0.15, 1.0, 1.0, 0.5),
          (0.15, 1.0, 1.0, 1.0))


@dataclasses.dataclass(frozen=True)
class PixelHNNConfig:
    """A PixelHNN.

    Attributes:
      pixels: size of one input (two flattened frames).
      latent_dim: size of z = (z_q, z_p), even (official 2).
      hidden: units of the autoencoder's and the HNN's layers (200).
      weight_decay: PyTorch-style L2 weight decay (1e-5).
      seed: seeds the initialisers.
    """

    pixels: int = 2 * 32 * 32 * 3
    latent_dim: int = 2
    hidden: int = 200
    weight_decay: float = 1e-5
    seed: int = 0

    def __post_init__(self):
        positive_int("pixels", self.pixels)
        positive_int("latent_dim", self.latent_dim)
        check(self.latent_dim % 2 == 0, "latent_dim", self.latent_dim, "even (z = (q, p))")
        positive_int("hidden", self.hidden)
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "a float >= 0")


def _relu_mlp(sizes_in: int, hidden: int, out: int, seed: int, name: str) -> keras.Sequential:
    layers = [keras.Input((sizes_in,))]
    for i in range(3):
        layers.append(keras.layers.Dense(
            hidden, activation="relu", name=f"{name}_{i}",
            kernel_initializer=keras.initializers.Orthogonal(seed=seed + i)))
    layers.append(keras.layers.Dense(
        out, name=f"{name}_out", kernel_initializer=keras.initializers.Orthogonal(seed=seed + 3)))
    return keras.Sequential(layers, name=name)


def loss_terms(encoder, decoder, field, x, x_next, target=None) -> dict:
    """{"ae", "cc", "hnn"}: the three loss terms (module docstring) of a batch of pairs; the
    autoencoder term reconstructs `target` (default: x itself)."""
    z, z_next = encoder(x), encoder(x_next)
    k = z.shape[-1] // 2
    ae = tf.reduce_mean(tf.square((x if target is None else target) - decoder(z)))
    cc = tf.reduce_mean(tf.square(z[:, k:] - (z_next[:, :k] - z[:, :k])))
    hnn = tf.reduce_mean(tf.square(z_next - (z + field(z))))
    return {"ae": ae, "cc": cc, "hnn": hnn}


class WeightedTermsModel(keras.Model):
    """A model trained on w_ae * ae + w_cc * cc + w_hnn * hnn (`loss_terms`) plus PyTorch-style
    weight decay (`config.weight_decay`); subclasses give `_terms(data)` -> {"loss", "ae", "cc",
    "hnn"}. Tracks the four (the loss without the decay)."""

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("loss", "ae", "cc", "hnn")}

    @property
    def metrics(self):
        return list(self.trackers.values())

    @staticmethod
    def _weighted(terms, w):
        """`terms` with "loss" = w[0] ae + w[1] cc + w[2] hnn."""
        return {**terms, "loss": w[0] * terms["ae"] + w[1] * terms["cc"] + w[2] * terms["hnn"]}

    def _track(self, terms):
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name])
        return {name: t.result() for name, t in self.trackers.items()}

    def hnn_weight(self):
        """The weight of the HNN term (w_hnn) in the loss."""
        raise NotImplementedError

    def _decayed_loss(self, loss):
        """`loss` + the weight decay of the variables it depends on: the latent HNN's only while
        w_hnn > 0. Under Adam a variable whose only gradient is the decay's moves by about the
        learning rate per step toward 0, whatever the decay's size (Adam divides the gradient by
        its own scale): in the staged schedule's first 5,500 steps (HNN term off) the HNN's
        weights fell from ~0.1 to 1e-190, where its field and every gradient of it are 0 for
        good, so the latent rollouts stood still (2026-12-02)."""
        hnn_vars = self.hnn.trainable_variables
        hnn_ids = {id(v) for v in hnn_vars}
        rest = [v for v in self.trainable_variables if id(v) not in hnn_ids]
        on = tf.cast(self.hnn_weight() > 0, loss.dtype)
        wd = self.config.weight_decay
        return (loss + weight_decay_term(rest, wd, loss.dtype)
                + on * weight_decay_term(hnn_vars, wd, loss.dtype))

    def train_step(self, data):
        with tf.GradientTape() as tape:
            terms = self._terms(data)
            loss = self._decayed_loss(terms["loss"])
        grads = tape.gradient(loss, self.trainable_variables,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return self._track(terms)

    def test_step(self, data):
        return self._track(self._terms(data))

    def get_config(self):
        return dataclasses.asdict(self.config)


class PixelHNN(WeightedTermsModel):
    """Autoencoder + latent HNN, trained on pairs (x_t, x_t+1) of consecutive inputs."""

    def __init__(self, config: PixelHNNConfig, **kwargs):
        super().__init__(config, **kwargs)
        c = config
        self.encoder = _relu_mlp(c.pixels, c.hidden, c.latent_dim, 10 * c.seed, "encoder")
        self.decoder = _relu_mlp(c.latent_dim, c.hidden, c.pixels, 10 * c.seed + 5, "decoder")
        # float32 latent: the HNN's float64 layers are fed casts of it.
        self.hnn = HNN(HNNConfig(state_dim=c.latent_dim, hidden=c.hidden, seed=c.seed))
        self.weights_ae_cc_hnn = self.add_weight(
            shape=(3,), initializer=keras.initializers.Constant(OFFICIAL[0][1:]),
            trainable=False, name="loss_weights")

    def field(self, z):
        """The latent HNN's (dH/dz_p, -dH/dz_q), in the latent's dtype."""
        return tf.cast(self.hnn(tf.cast(z, tf.float64)), z.dtype)

    def call(self, x):
        return self.decoder(self.encoder(x))

    def hnn_weight(self):
        return self.weights_ae_cc_hnn[2]

    def _terms(self, data):
        x, x_next = data
        return self._weighted(loss_terms(self.encoder, self.decoder, self.field, x, x_next),
                              self.weights_ae_cc_hnn)


def fit_schedule(model: PixelHNN, x, x_next, *, steps: int, schedule=OFFICIAL,
                 batch_size: int = 200, learning_rate: float = 1e-3, seed: int = 0) -> list:
    """Adam on the weighted loss, stage by stage: `schedule` = ((fraction, w_ae, w_cc, w_hnn),
    ...). Returns one {"stage", "steps", "weights", "loss", "ae", "cc", "hnn"} per stage (the
    terms' means over the stage's last 50 steps)."""
    positive_int("steps", steps)
    n = len(x)
    ds = (tf.data.Dataset.from_tensor_slices((np.float32(x), np.float32(x_next)))
          .shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat()
          .batch(min(batch_size, n), drop_remainder=True).prefetch(2))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), steps_per_execution=50)
    out = []
    for i, (fraction, *weights) in enumerate(schedule):
        stage_steps = max(50, int(round(fraction * steps / 50)) * 50)
        model.weights_ae_cc_hnn.assign(weights)
        hist = model.fit(ds, epochs=stage_steps // 50, steps_per_epoch=50, verbose=0,
                         shuffle=False)
        out.append({"stage": i, "steps": stage_steps, "weights": list(weights),
                    **{k: float(v[-1]) for k, v in hist.history.items()}})
    return out
