"""HNN-conv (HGN appendix A.3): PixelHNN with HGN's convolutional encoder and decoder.

What the paper says, and what is decided here. A.3 introduces HNN-conv as "a variant of the
PixelHNN architecture using the same convolutional encoder and decoder as used in HGN", with
"one additional linear layer for the encoder and decoder" between the conv latent and the HNN's
vector (q, p); the rest of A.3 (minibatches of 64, ~15,000 steps, Adam 1e-3, weight decay 1e-5,
rollouts by solve_ivp) is PixelHNN's. So HNN-conv is trained with the PixelHNN loss (A.3 eq. 15),
NOT with HGN's reconstruction of a whole integrated rollout: the dynamics only ever see one
finite-difference step (eq. 12), which is why the paper (section 4.1, Fig. 6) and seed 003 find
it collapsing to a near-static image. HGN's hyperparameters (A.1) are taken for the networks.

Model, for a pair of consecutive frames X_t = (x_t, x_t+1) (the pair makes the velocity
observable):

    encoder  E: X_t [B, 2, 32, 32, 3] -> z_t = (q_t, p_t) in R^d    HGN's encoder (8 conv layers,
                32 then 64 filters) and the f_psi stride-2 stack down to 4x4, then ONE Dense
                (`networks.VectorEncoder`)
    decoder  D: z_t -> x_t [32, 32, 3]     ONE Dense to [4, 4, 64], then HGN's 3 residual
                up-sampling blocks and sigmoid (`networks.VectorDecoder`); the whole z is decoded
                (PixelHNN's decoder reads z; HGN's reads q alone)
    HNN      H: R^d -> R, an MLP (200, 200 tanh, float64; `baselines.hnn.HNN`);
                field f(z) = (dH/dp, -dH/dq) (`integrators.vector_field`, tf.GradientTape)

    d = 2 x the system's degrees of freedom (A.3: 2, 2, 8, 12 for mass_spring, pendulum,
    two_body, three_body).

Loss of a window of three frames (x_t, x_t+1, x_t+2), z = E(x_t, x_t+1), z' = E(x_t+1, x_t+2):

    AE   = mean (x_t - D(z))^2                        (the decoder draws one frame, HGN's)
    CC   = mean (p - (q' - q))^2                      (eq. 13)
    HNN  = mean (z' - (z + f(z)))^2                   (eq. 12 with the finite difference z' - z:
                                                       one latent time unit per frame)
    loss = AE + CC + 0.1 HNN + (1e-5 / 2) |theta|^2   (eq. 15, PyTorch-style weight decay)

Rollout (`rollout`): z_0 = E(x_0, x_1), then the library's leapfrog (`hgn_tf.integrators`,
`substeps` sub-steps of 1 / substeps per frame: 8, i.e. HGN's dt = 0.125) on H, every frame
decoded. H is a general MLP of (q, p), not separable, so leapfrog is first order here and not
symplectic; its step (1/8 of a frame) keeps the difference to an exact solution small next to the
pixel errors. `energy` along the rollout is the learned H (Table 2's variance).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import keras
import numpy as np
import tensorflow as tf

from hgn_tf import integrators, networks
from hgn_tf import physics as physics_lib
from hgn_tf.baselines import pixel_hnn
from hgn_tf.baselines.hnn import HNN, HNNConfig
from hgn_tf.errors import ConfigError, check, positive_int

__all__ = ["PAPER_FILTERS", "HNNConv", "HNNConvConfig", "latent_dim", "load", "loss_terms",
           "save"]

PAPER_FILTERS = (32, 64, 64, 64, 64, 64, 64)  # HGN A.1: 8 conv layers (with the Dense's input)
_CONFIG_FILE, _WEIGHTS_FILE = "hnn_conv.json", "hnn_conv.weights.h5"


def latent_dim(system: str) -> int:
    """d = 2 x the degrees of freedom of `system` (A.3: 2, 2, 8, 12)."""
    return 2 * physics_lib.get(system).dim


@dataclasses.dataclass(frozen=True)
class HNNConvConfig:
    """An HNN-conv.

    Attributes:
      latent_dim: d = size of z = (q, p), even (`latent_dim(system)`).
      resolution: pixels a side of the frames (32 or 64).
      encoder_filters: the encoder's 3x3 ReLU convs (HGN: 32, then 64 x 6).
      transformer_filters: the stride-2 convs down to `state_size` (HGN's f_psi: 64).
      decoder_filters: the residual blocks' filters (HGN: 64).
      state_size: the conv latent's side (HGN: 4).
      hidden: the HNN's two tanh layers (200).
      weight_decay: PyTorch-style L2 (PixelHNN's 1e-5).
      weights: (w_ae, w_cc, w_hnn), eq. 15's (1, 1, 0.1).
      substeps: leapfrog sub-steps per frame in a rollout (dt = 1 / substeps).
      seed: seeds the initialisers.
    """

    latent_dim: int = 2
    resolution: int = 32
    encoder_filters: tuple[int, ...] = PAPER_FILTERS
    transformer_filters: int = 64
    decoder_filters: int = 64
    state_size: int = 4
    hidden: int = 200
    weight_decay: float = 1e-5
    weights: tuple[float, float, float] = (1.0, 1.0, 0.1)
    substeps: int = 8
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "encoder_filters", tuple(self.encoder_filters))
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        for name in ("latent_dim", "resolution", "transformer_filters", "decoder_filters",
                     "state_size", "hidden", "substeps"):
            positive_int(name, getattr(self, name))
        check(self.latent_dim % 2 == 0, "latent_dim", self.latent_dim, "even (z = (q, p))")
        check(len(self.encoder_filters) >= 1 and all(
            isinstance(f, int) and f > 0 for f in self.encoder_filters), "encoder_filters",
              self.encoder_filters, "a non-empty tuple of positive integers")
        blocks = self.resolution // self.state_size
        check(blocks >= 2 and blocks & (blocks - 1) == 0 and self.resolution % self.state_size == 0,
              "state_size", self.state_size,
              f"resolution / state_size a power of 2 >= 2 (resolution {self.resolution})")
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "a float >= 0")
        check(len(self.weights) == 3 and all(w >= 0 for w in self.weights), "weights",
              self.weights, "three floats >= 0 (w_ae, w_cc, w_hnn)")

    @property
    def blocks(self) -> int:
        """Stride-2 convs in the encoder and up-sampling blocks in the decoder."""
        return int(np.log2(self.resolution // self.state_size))


def loss_terms(encode, decode, field, window) -> dict:
    """{"ae", "cc", "hnn"} (module docstring) of windows [B, 3, H, W, 3] of consecutive frames:
    PixelHNN's terms on the pairs (frames 0-1, frames 1-2), the autoencoder term on frame 0."""
    return pixel_hnn.loss_terms(encode, decode, field, window[:, 0:2], window[:, 1:3],
                                target=window[:, 0])


class HNNConv(pixel_hnn.WeightedTermsModel):
    """HGN's conv encoder/decoder, one Dense each side, an HNN on the vector latent."""

    def __init__(self, config: HNNConvConfig, **kwargs):
        super().__init__(config, **kwargs)
        c = config
        keras.utils.set_random_seed(c.seed)  # the conv layers' default initialisers
        self.encoder = networks.VectorEncoder(c.encoder_filters, c.latent_dim, c.blocks,
                                              c.transformer_filters, name="encoder")
        self.decoder = networks.VectorDecoder(c.decoder_filters, c.blocks, c.state_size,
                                              name="decoder")
        self.hnn = HNN(HNNConfig(state_dim=c.latent_dim, hidden=c.hidden, seed=c.seed),
                       name="hnn")
        self.integrator = integrators.get("leapfrog")
        # Build every weight (each part on its own input: a first call of the whole model
        # would make Keras build it before its parts).
        z = self.encoder(tf.zeros([1, 2, c.resolution, c.resolution, 3]))
        self.decoder(z)
        self.hnn(tf.zeros([1, c.latent_dim], tf.float64))
        self.built = True

    def encode(self, pair):
        """z [B, d] float32 of frame pairs [B, 2, H, W, 3]."""
        return self.encoder(pair)

    def decode(self, z):
        """Frames [..., H, W, 3] of latents [..., d]."""
        z = tf.cast(z, tf.float32)
        flat = self.decoder(tf.reshape(z, [-1, z.shape[-1]]))
        return tf.reshape(flat, tf.concat([tf.shape(z)[:-1], tf.shape(flat)[1:]], 0))

    def hamiltonian(self, q, p):
        """The learned H [B] at q, p [B, d/2] (float64)."""
        return self.hnn.energy(tf.concat([q, p], axis=-1))

    def field(self, z):
        """(dH/dp, -dH/dq) at z [B, d], in z's dtype (computed in float64)."""
        k = self.config.latent_dim // 2
        z64 = tf.cast(z, tf.float64)
        dq, dp = integrators.vector_field(self.hamiltonian, z64[:, :k], z64[:, k:])
        return tf.cast(tf.concat([dq, dp], axis=-1), z.dtype)

    def rollout(self, frames, n_frames: int) -> dict:
        """From frames [B, >= 2, H, W, 3]: {"frames" [B, n_frames, H, W, 3], "z" [B, n_frames, d]
        (float64), "energy" [B, n_frames] (the learned H)}; z_0 = E(frames 0, 1)."""
        c = self.config
        k = c.latent_dim // 2
        z0 = tf.cast(self.encode(frames[:, :2]), tf.float64)
        qs, ps = integrators.integrate(self.integrator, self.hamiltonian, z0[:, :k], z0[:, k:],
                                       1.0 / c.substeps, (n_frames - 1) * c.substeps)
        z = tf.transpose(tf.concat([qs, ps], axis=-1)[:: c.substeps], [1, 0, 2])
        energy = tf.reshape(self.hnn.energy(tf.reshape(z, [-1, c.latent_dim])),
                            tf.shape(z)[:2])
        return {"frames": self.decode(z), "z": z, "energy": energy}

    def call(self, frames):
        """Frames [B, T >= 2, H, W, 3] -> the rollout's frames [B, T, H, W, 3]."""
        return self.rollout(frames, frames.shape[1])["frames"]

    def hnn_weight(self):
        return tf.constant(self.config.weights[2], tf.float32)

    def _terms(self, window):
        return self._weighted(loss_terms(self.encode, self.decode, self.field, window),
                              self.config.weights)


def save(model: HNNConv, folder) -> pathlib.Path:
    """`folder`/hnn_conv.json (the config) and `folder`/hnn_conv.weights.h5."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / _CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(model.config), indent=1))
    model.save_weights(folder / _WEIGHTS_FILE)
    return folder


def load(folder) -> HNNConv:
    """The model `save` wrote to `folder`."""
    path = pathlib.Path(folder) / _CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"`folder` {str(folder)!r} holds no {_CONFIG_FILE}.", "folder")
    model = HNNConv(HNNConvConfig(**json.loads(path.read_text())))
    model.load_weights(pathlib.Path(folder) / _WEIGHTS_FILE)
    return model
