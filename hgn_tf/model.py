"""The Hamiltonian Generative Network as a `keras.Model` with GECO as its `train_step`.

    frames x_{0..k-1} --encoder--> q_phi(z | x) = N(mu, diag sigma^2)    (a TFP distribution)
    z ~ q_phi (reparametrised; the mean when deterministic or evaluating)
    s_0 = (q_0, p_0) = f_psi(z)
    s_{t+1} = integrator.step(H_gamma, s_t, dt)   dq/dt = dH/dp, dp/dt = -dH/dq (GradientTape)
    x_hat_t = decoder(q_t)

Training objective (HGN eq. 4 with a Lagrange multiplier, GECO; Rezende & Viola 2018):
    recon = mean_{b,t,h,w,c} (x_hat - x)^2          per-pixel MSE (decoder variance fixed to 1)
    kl    = mean_{b,h,w} sum_c KL(q_phi(z) || N(0, I))   per latent location, summed over channels
    loss  = kl + lambda * (recon - kappa^2)  (value uses the moving average; see `hgn_tf.geco`)
These units are those of the public PyTorch reproduction, so its GECO settings (kappa 0.033,
alpha 0.99, lambda0 1, nu 0.1) mean the same thing here. GECO's moving average, multiplier and
step live in non-trainable weights: checkpoints carry them and `BackupAndRestore` restores them.

Input modes: "autoencode" -- the encoder sees all T frames and all T are reconstructed;
"inference" -- it sees the first `input_frames`, and all T are produced (the rest predicted).
In both the inferred state is the state at frame 0 and T - 1 integrator steps follow.
"""

from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from hgn_tf import geco as geco_lib
from hgn_tf import integrators, networks
from hgn_tf.config import GecoConfig, ModelConfig, dataclass_from_dict
from hgn_tf.errors import ConfigError, positive_int

tfd = tfp.distributions

__all__ = ["HGN", "PREDICTIVE_SEED"]


# The stateless seed of the posterior draws whose mean validation and serving score for a
# model trained on the predictive mean (`ModelConfig.predictive_draws` > 1).
PREDICTIVE_SEED = (0, 1)


@keras.saving.register_keras_serializable(package="hgn_tf")
class HGN(keras.Model):
    """Hamiltonian Generative Network.

    Args:
      config: `ModelConfig` (or its dict) -- architecture and variant.
      geco: `GecoConfig` (or its dict) -- the objective's multiplier rule.
      seed: seeds posterior sampling (weights are seeded by `keras.utils.set_random_seed`).
      resolution: pixels a side of the frames (the data's `DataConfig.resolution`).
      sequence_length: frames per training sequence (the data's `DataConfig.n_frames`); in
        autoencode mode the encoder reads that many frames.
    """

    def __init__(self, config: ModelConfig | dict | None = None,
                 geco: GecoConfig | dict | None = None, seed: int = 0, *,
                 resolution: int = 32, sequence_length: int = 30, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = dataclass_from_dict(ModelConfig, config)
        if isinstance(geco, dict):
            geco = dataclass_from_dict(GecoConfig, geco)
        self.config = config or ModelConfig()
        self.geco_config = geco or GecoConfig()
        self.seed = seed
        self.resolution = positive_int("resolution", resolution)
        self.sequence_length = positive_int("sequence_length", sequence_length)
        c = self.config
        latent = c.latent_channels
        blocks = c.upsampling_blocks(self.resolution)
        posterior_params = 1 if c.deterministic else 2
        if c.latent == "vector":
            self._build_vector_networks(posterior_params, blocks)
        else:
            self._build_spatial_networks(posterior_params, blocks)
        dense = c.latent == "vector"
        if c.dynamics == "hamiltonian":
            self.hamiltonian_net = networks.HamiltonianNet(
                c.hamiltonian_filters, c.hamiltonian_layers, separable=c.separable_hamiltonian,
                dense=dense, name="hamiltonian")
            self.dynamics_net = None
            self.integrator = integrators.get(c.integrator)
        else:
            self.hamiltonian_net = None
            self.dynamics_net = networks.DirectDynamics(c.hamiltonian_filters, c.hamiltonian_layers,
                                                        latent, dense=dense, name="dynamics")
            self.integrator = None
        self.seed_generator = keras.random.SeedGenerator(seed, name="posterior_seed")
        # GECO state: non-trainable, identical on every replica (updated from all-reduced values).
        self.geco_constraint_ma = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="geco_constraint_ma",
            aggregation="only_first_replica")
        self.geco_multiplier = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.geco_config.initial_multiplier),
            trainable=False, name="geco_multiplier", aggregation="only_first_replica")
        self.geco_step = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="geco_step",
            aggregation="only_first_replica")
        # The frames a training step fits (a curriculum lengthens it; see `TrainConfig`).
        self.train_frames = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.sequence_length),
            dtype="int32", trainable=False, name="train_frames",
            aggregation="only_first_replica")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.recon_tracker = keras.metrics.Mean(name="recon")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    def _build_spatial_networks(self, posterior_params, blocks):
        """Encoder, f_psi and decoder of the paper's [S, S, L] state."""
        c = self.config
        latent = c.latent_channels
        if c.use_f_psi:
            self.encoder = networks.Encoder(c.encoder_filters, posterior_params * c.z_channels,
                                            name="encoder", dtype=c.precision)
            self.transformer = networks.Transformer(c.transformer_filters, 2 * latent, blocks,
                                                    name="f_psi")
        else:
            self.encoder = networks.Encoder(c.encoder_filters, posterior_params * 2 * latent,
                                            downsample_blocks=blocks,
                                            downsample_filters=c.transformer_filters,
                                            name="encoder", dtype=c.precision)
            self.transformer = None
        self.decoder = networks.Decoder(c.decoder_filters, blocks, name="decoder",
                                        dtype=c.precision)

    def _build_vector_networks(self, posterior_params, blocks):
        """Encoder, f_psi and decoder of `latent="vector"` (HGN++): q, p in R^d."""
        c = self.config
        d = c.latent_channels
        posterior_dim = c.z_channels if c.use_f_psi else 2 * d
        self.encoder = networks.VectorEncoder(c.encoder_filters, posterior_params * posterior_dim,
                                              blocks, c.transformer_filters, name="encoder",
                                              dtype=c.precision)
        self.transformer = (networks.VectorTransformer(c.transformer_filters, 2, 2 * d,
                                                       name="f_psi") if c.use_f_psi else None)
        self.decoder = networks.VectorDecoder(c.decoder_filters, blocks, c.state_size,
                                              name="decoder", dtype=c.precision)

    # ------------------------------------------------------------------ pieces
    @property
    def state_shape(self) -> tuple[int, ...]:
        """The shape of q (and of p): [S, S, L] (spatial) or [L] (vector)."""
        c = self.config
        if c.latent == "vector":
            return (c.latent_channels,)
        return (c.state_size, c.state_size, c.latent_channels)

    @property
    def _latent_ndims(self) -> int:
        return len(self.state_shape)

    @property
    def conditioning_frame_count(self) -> int:
        """k, the frames the encoder reads: `input_frames` (inference) or `sequence_length`."""
        return self.config.conditioning_frame_count(self.sequence_length)

    def conditioning_frames(self, frames):
        """The first k frames of `frames` [B, >=k, H, W, 3]: what the encoder reads."""
        k = self.conditioning_frame_count
        return tf.ensure_shape(frames[:, :k], [None, k, *frames.shape[2:]])

    def posterior(self, frames):
        """q_phi(. | frames) as a TFP distribution over z (or over s0 without f_psi).

        Deterministic models have no posterior: this raises for them.
        """
        if self.config.deterministic:
            raise ConfigError("A deterministic HGN (`deterministic=True`) has no posterior.",
                              "deterministic")
        params = self.encoder(frames)
        mean, log_var = tf.split(params, 2, axis=-1)
        scale = tf.exp(0.5 * tf.clip_by_value(log_var, -20.0, 10.0))
        return tfd.Independent(tfd.Normal(mean, scale),
                               reinterpreted_batch_ndims=self._latent_ndims)

    def prior(self, like):
        """N(0, I) with the event shape of `like`."""
        zeros = tf.zeros_like(like)
        return tfd.Independent(tfd.Normal(zeros, tf.ones_like(zeros)),
                               reinterpreted_batch_ndims=self._latent_ndims)

    def latent_to_state(self, z):
        s = self.transformer(z) if self.transformer is not None else z
        return tf.split(s, 2, axis=-1)

    def encode(self, frames, sample=False, seed=None):
        """Frames [B, k, H, W, 3] in [0, 1] -> (q0, p0, kl [B]).

        `sample=False` uses the posterior mean. `kl` is in the loss's units (per latent location,
        summed over channels); zero for a deterministic model.
        """
        if self.config.deterministic:
            z = self.encoder(frames)
            kl = tf.zeros([tf.shape(frames)[0]], dtype=z.dtype)
        else:
            post = self.posterior(frames)
            if sample:
                seed = seed if seed is not None else self.seed_generator.next()
                z = post.sample(seed=tf.cast(seed, tf.int32))  # TFP takes int32 stateless seeds
            else:
                z = post.mean()
            kl = self._kl(post, z)
        q0, p0 = self.latent_to_state(z)
        return q0, p0, kl

    def _kl(self, post, z):
        """KL(q_phi || prior) per latent location (spatial: H x W of them; a vector latent is
        one), summed over channels: [B]."""
        locations = tf.cast(tf.reduce_prod(tf.shape(z)[1:-1]), z.dtype)
        return post.kl_divergence(self.prior(z)) / locations

    def hamiltonian(self, q, p):
        """The learned energy H_gamma(q, p) -> [B]."""
        if self.hamiltonian_net is None:
            raise ConfigError("`dynamics='direct'` models have no Hamiltonian.", "dynamics")
        return self.hamiltonian_net(q, p)

    def decode(self, q, training=False):
        """q [..., *state_shape] -> frames [..., H, W, 3] (any number of leading axes).
        `training`: the decoder's computation for gradients (`networks.Decoder`)."""
        n = self._latent_ndims
        lead = tf.shape(q)[:-n]
        flat = tf.reshape(q, tf.concat([[-1], tf.shape(q)[-n:]], axis=0))
        x = self.decoder(flat, training=training)
        return tf.reshape(x, tf.concat([lead, tf.shape(x)[1:]], axis=0))

    def integrate(self, q0, p0, n_steps, dt, xla_max_batch=0):
        """States at 0, dt, ..., (n_steps - 1) dt -> qs, ps [B, n_steps, *state_shape].

        Runs in a `tf.while_loop`: tracing cost does not depend on n_steps. Negative dt runs
        backward in time; a scaled dt runs faster or slower. Batches of at most
        `xla_max_batch` sequences take XLA-compiled steps (`integrators.xla_steps`; 0: never).
        """
        dt = tf.cast(dt, q0.dtype)
        if self.dynamics_net is not None:
            qs, ps = _euler_direct(self.dynamics_net, q0, p0, dt, n_steps - 1, xla_max_batch)
        else:
            qs, ps = integrators.integrate(self.integrator, self.hamiltonian_net, q0, p0, dt,
                                           n_steps - 1, xla_max_batch=xla_max_batch)
        perm = [1, 0, *range(2, 2 + self._latent_ndims)]
        return tf.transpose(qs, perm), tf.transpose(ps, perm)

    def _integrate_decoded(self, q0, p0, n_steps, dt, xla_max_batch=0):
        """(qs, ps, frames), each [B, n_steps, ...]: `integrate` and `decode`, with the frames
        decoded inside the integration loop, a few states at a time, so that decoding overlaps
        the next steps (`integrators.integrate`'s `decode`; the same values, faster on a CPU).
        For inference: gradients go through `integrate` and `decode` apart."""
        if self.dynamics_net is not None:
            qs, ps = self.integrate(q0, p0, n_steps, dt, xla_max_batch)
            return qs, ps, self.decode(qs)
        dt = tf.cast(dt, q0.dtype)
        qs, ps, frames = integrators.integrate(
            self.integrator, self.hamiltonian_net, q0, p0, dt, n_steps - 1,
            xla_max_batch=xla_max_batch, decode=self.decode)
        perm = [1, 0, *range(2, 2 + self._latent_ndims)]
        frames = tf.transpose(frames, [1, 0, 2, 3, 4])  # [B, n_steps, H, W, 3]
        frames.set_shape([None, None, self.resolution, self.resolution, 3])
        return tf.transpose(qs, perm), tf.transpose(ps, perm), frames

    def energies(self, qs, ps):
        """H along a rollout: qs, ps [B, T, ...] -> [B, T]."""
        b, t = tf.shape(qs)[0], tf.shape(qs)[1]
        flat = lambda x: tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], axis=0))  # noqa: E731
        return tf.reshape(self.hamiltonian(flat(qs), flat(ps)), [b, t])

    # ------------------------------------------------------------------ public API
    def rollout(self, frames, n_steps, dt=None, sample=False, seed=None, with_energy=True,
                training=False, xla_max_batch=0, draws=0):
        """Encode `frames` and roll out `n_steps` frames (the first is the initial state's).

        Args:
          frames: [B, k, H, W, 3] float in [0, 1] (uint8 is converted); in inference mode only
            the first `input_frames` are read.
          n_steps: frames to produce (>= 1).
          dt: integrator step (default: the config's); negative runs backward.
          sample: draw the initial state from the posterior instead of taking its mean.
          with_energy: also evaluate the learned H along the rollout (training skips it).
          training: decode the way a gradient is taken fastest: after the integration loop,
            all frames as one batch. False (default) decodes them inside the loop, a few states
            at a time, overlapping the integration (`_integrate_decoded`; the same values).
          xla_max_batch: batches of at most this many sequences take XLA-compiled integrator
            steps (`integrators.xla_steps`: twice as fast at batch 1); 0 (default): never.
          draws: K > 0: `frames` is the predictive mean of K posterior draws' decoded rollouts
            (`predictive_frames`, the draws seeded by `seed`), while `q`, `p`, `energy` and
            `kl` stay the posterior mean's. The frames are encoded once, the mean state and
            the K draws integrated in one batch, and only the draws decoded. Needs
            `sample=False` and a stochastic model. 0 (default): decode the rollout itself.
        Returns:
          dict with `frames` [B, n_steps, H, W, 3], `q`, `p` [B, n_steps, S, S, L], `kl` [B]
          and, for Hamiltonian dynamics, `energy` [B, n_steps].
        """
        frames = _as_float_frames(frames)
        dt = self.config.dt if dt is None else dt
        draws = 0 if draws == 0 else positive_int("draws", draws)
        if draws and sample:
            raise ConfigError("`sample` must be False when `draws` > 0 (the draws' mean is "
                              "the frames, the posterior mean the state), got True.", "sample")
        if draws:
            return self._rollout_with_draws(frames, n_steps, dt, draws, seed, with_energy,
                                            training, xla_max_batch)
        q0, p0, kl = self.encode(self.conditioning_frames(frames), sample=sample, seed=seed)
        if training:
            qs, ps = self.integrate(q0, p0, n_steps, dt, xla_max_batch)
            decoded = self.decode(qs, training=True)
        else:
            qs, ps, decoded = self._integrate_decoded(q0, p0, n_steps, dt, xla_max_batch)
        out = {"frames": decoded, "q": qs, "p": ps, "kl": kl}
        if with_energy and self.hamiltonian_net is not None:
            out["energy"] = self.energies(qs, ps)
        return out

    def draw_frames(self, frames, n_steps, draws, dt=None, seed=None, training=False,
                    xla_max_batch=0):
        """The decoded rollouts of `draws` initial states drawn from the posterior.

        Args:
          frames: [B, k, H, W, 3] as in `rollout`.
          n_steps, dt, training, xla_max_batch: as in `rollout`.
          draws: K, the posterior draws per sequence (>= 1).
          seed: a stateless seed (int tensor of shape [2]); None draws one from the model's
            `keras.random.SeedGenerator`.
        Returns:
          (frames [K, B, n_steps, H, W, 3], kl [B]). Their mean over the first axis is the
          predictive mean (`predictive_frames`).
        """
        frames = _as_float_frames(frames)
        dt = self.config.dt if dt is None else dt
        post, z = self._posterior_draws(frames, draws, seed)
        kl = self._kl(post, z[0])
        flat = tf.reshape(z, tf.concat([[-1], tf.shape(z)[2:]], axis=0))  # [K * B, ...]
        q0, p0 = self.latent_to_state(flat)
        qs, _ = self.integrate(q0, p0, n_steps, dt, xla_max_batch)
        return self._draws_decoded(qs, z, training), kl

    def _posterior_draws(self, frames, draws, seed):
        """The posterior of `frames` and `draws` samples from it [K, B, ...]."""
        if self.config.deterministic:
            raise ConfigError("A deterministic HGN (`deterministic=True`) has no posterior "
                              "to draw from.", "deterministic")
        draws = positive_int("draws", draws)
        post = self.posterior(self.conditioning_frames(frames))
        seed = seed if seed is not None else self.seed_generator.next()
        return post, post.sample(draws, seed=tf.cast(seed, tf.int32))

    def _draws_decoded(self, qs, z, training):
        """The rollouts qs [K * B, T, ...] of draws z [K, B, ...] decoded -> [K, B, T, H, W, 3]."""
        x = self.decode(qs, training=training)
        return tf.reshape(x, tf.concat([tf.shape(z)[:2], tf.shape(x)[1:]], axis=0))

    def _rollout_with_draws(self, frames, n_steps, dt, draws, seed, with_energy, training,
                            xla_max_batch):
        """`rollout(draws=K)`: one encode; the posterior mean and the K draws integrated as one
        batch of (K + 1) B states; the mean's q, p, energy; the draws' frames, averaged."""
        post, z = self._posterior_draws(frames, draws, seed)
        mean = post.mean()
        every = tf.concat([mean[None], z], axis=0)  # [K + 1, B, ...]
        q0, p0 = self.latent_to_state(tf.reshape(every, tf.concat([[-1], tf.shape(z)[2:]], 0)))
        qs, ps = self.integrate(q0, p0, n_steps, dt, xla_max_batch)
        b = tf.shape(z)[1]
        x = self._draws_decoded(qs[b:], z, training)
        out = {"frames": tf.reduce_mean(x, axis=0), "q": qs[:b], "p": ps[:b],
               "kl": self._kl(post, mean)}
        if with_energy and self.hamiltonian_net is not None:
            out["energy"] = self.energies(qs[:b], ps[:b])
        return out

    def predictive_frames(self, frames, n_steps, draws, dt=None, seed=None, training=False,
                          xla_max_batch=0):
        """The predictive mean: the mean of `draw_frames`' K decoded rollouts -> (frames
        [B, n_steps, H, W, 3], kl [B]). What a model trained with `predictive_draws` = K > 1
        fits to the frames, and the best guess at frames it has not read when its posterior
        carries the state's uncertainty."""
        x, kl = self.draw_frames(frames, n_steps, draws, dt=dt, seed=seed, training=training,
                                 xla_max_batch=xla_max_batch)
        return tf.reduce_mean(x, axis=0), kl

    @property
    def state_dim(self) -> int:
        """D = 2 x prod(state_shape): the size of the flattened initial state s0 = (q0, p0)."""
        size = 1
        for s in self.state_shape:
            size *= s
        return 2 * size

    def flatten_state(self, q, p):
        """(q, p) [B, *state_shape] each -> s [B, D]: q and p concatenated on the channel axis
        (the layout f_psi outputs), then flattened. `unflatten_state` inverts it."""
        s = tf.concat([q, p], axis=-1)
        return tf.reshape(s, [-1, self.state_dim])

    def unflatten_state(self, s):
        """s [B, D] -> (q, p) [B, *state_shape] each (the inverse of `flatten_state`)."""
        *lead, channels = self.state_shape
        s = tf.reshape(s, [-1, *lead, 2 * channels])
        return tf.split(s, 2, axis=-1)

    def sample(self, n, n_steps, dt=None, seed=None, prior=None, xla_max_batch=0):
        """Rollouts from a prior over the initial state.

        `prior=None` (the standard prior): s0 = f_psi(z), z ~ N(0, I) (s0 = z without f_psi).
        Otherwise `prior` is a learned density over the flattened initial state s0 [D]
        (`hgn_tf.prior`: any object with `dim` and `sample(n, seed) -> [n, D]`): s0 ~ prior,
        split into (q0, p0) by `unflatten_state`; f_psi is not used (the prior was fitted to
        f_psi's outputs on the encoded training set).

        `seed`: a stateless seed (int tensor of shape [2]); None draws one from the model's
        `keras.random.SeedGenerator`. `xla_max_batch`: as in `rollout`.
        """
        if self.config.deterministic:
            raise ConfigError("A deterministic HGN (`deterministic=True`) cannot sample.",
                              "deterministic")
        c = self.config
        dt = c.dt if dt is None else dt
        seed = seed if seed is not None else self.seed_generator.next()
        if prior is not None:
            if getattr(prior, "dim", None) != self.state_dim:
                raise ConfigError(
                    f"`prior` must be a density over this model's flattened initial state "
                    f"(dim {self.state_dim}), got one of dim {getattr(prior, 'dim', None)!r}.",
                    "prior")
            q0, p0 = self.unflatten_state(prior.sample(n, seed=tf.cast(seed, tf.int32)))
        else:
            if c.latent == "vector":
                shape = [n, c.z_channels if c.use_f_psi else 2 * c.latent_channels]
            elif c.use_f_psi:
                shape = [n, self.resolution, self.resolution, c.z_channels]
            else:
                shape = [n, c.state_size, c.state_size, 2 * c.latent_channels]
            z = tfd.Normal(0.0, 1.0).sample(shape, seed=tf.cast(seed, tf.int32))
            q0, p0 = self.latent_to_state(z)
        qs, ps, frames = self._integrate_decoded(q0, p0, n_steps, dt, xla_max_batch)
        out = {"frames": frames, "q": qs, "p": ps}
        if self.hamiltonian_net is not None:
            out["energy"] = self.energies(qs, ps)
        return out

    def call(self, frames, training=False):
        """Reconstruct a sequence: frames [B, T, H, W, 3] -> frames [B, T, H, W, 3]."""
        frames = _as_float_frames(frames)
        sample = training and not self.config.deterministic
        return self.rollout(frames, tf.shape(frames)[1], sample=sample,
                            with_energy=False)["frames"]

    # ------------------------------------------------------------------ training
    def objective_terms(self, frames, training, horizon=None, seed=None):
        """(recon, kl) of a batch: the per-pixel MSE of the rollout and the mean KL.

        `horizon`: fit only the first `horizon` frames (a curriculum; the encoder still reads
        its k conditioning frames). None: every frame of `frames`.
        With `predictive_draws` = K > 1 the rollout is the predictive mean of K posterior draws
        (`predictive_frames`), in training and in validation alike; otherwise one draw in
        training and the posterior mean in validation. `seed`: the draws' stateless seed (None:
        the model's seed generator in training, a fixed one in validation).
        """
        frames = _as_float_frames(frames)
        n = tf.shape(frames)[1] if horizon is None else horizon
        xla = None if self.config.xla_steps else 0
        draws = self.config.predictive_draws
        if draws > 1:
            if seed is None and not training:
                seed = tf.constant(PREDICTIVE_SEED)  # validation scores the same draws
            x, kl = self.predictive_frames(frames, n, draws, seed=seed, training=training,
                                           xla_max_batch=xla)
        else:
            sample = training and not self.config.deterministic
            out = self.rollout(frames, n, sample=sample, seed=seed, with_energy=False,
                               training=training, xla_max_batch=xla)
            x, kl = out["frames"], out["kl"]
        recon = tf.reduce_mean(tf.square(x - frames[:, :n]))
        return recon, tf.reduce_mean(kl)

    def _objective(self, recon, kl):
        if self.config.deterministic:
            # An autoencoder: no KL, no multiplier; the state variables are left alone.
            return geco_lib.GecoStep(recon, recon - self.geco_config.kappa ** 2,
                                     self.geco_constraint_ma, self.geco_multiplier)
        return geco_lib.geco_update(recon, kl, self.geco_constraint_ma, self.geco_multiplier,
                                    self.geco_step, self.geco_config)

    def train_step(self, data):
        frames = data["frames"] if isinstance(data, dict) else data
        replica = tf.distribute.get_replica_context()
        replicas = replica.num_replicas_in_sync if replica is not None else 1
        with tf.GradientTape() as tape:
            recon, kl = self.objective_terms(frames, training=True,
                                             horizon=tf.convert_to_tensor(self.train_frames))
            # The gradient: this replica's share of the global objective.
            local = self._objective(recon, kl)
            loss = local.loss / replicas
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        # GECO's state from the global (all-replica) reconstruction and KL.
        if replicas > 1:
            recon_g = replica.all_reduce("MEAN", recon)
            kl_g = replica.all_reduce("MEAN", kl)
            step = self._objective(recon_g, kl_g)
        else:
            recon_g, kl_g, step = recon, kl, local
        if not self.config.deterministic:
            self.geco_constraint_ma.assign(step.constraint_ma)
            self.geco_multiplier.assign(step.multiplier)
            self.geco_step.assign_add(1.0)
        return self._update_metrics(step.loss, recon_g, kl_g)

    def test_step(self, data):
        frames = data["frames"] if isinstance(data, dict) else data
        recon, kl = self.objective_terms(frames, training=False)
        if self.config.deterministic:
            loss = recon
        else:
            loss = geco_lib.evaluation_loss(recon, kl, self.geco_multiplier, self.geco_config)
        return self._update_metrics(loss, recon, kl)

    def _update_metrics(self, loss, recon, kl):
        self.loss_tracker.update_state(loss)
        self.recon_tracker.update_state(recon)
        self.kl_tracker.update_state(kl)
        return {"loss": self.loss_tracker.result(), "recon": self.recon_tracker.result(),
                "kl": self.kl_tracker.result(), "multiplier": tf.identity(self.geco_multiplier)}

    @property
    def metrics(self):
        return [self.loss_tracker, self.recon_tracker, self.kl_tracker]

    def build_all(self):
        """Create every weight by running one forward pass on a zero training sequence."""
        r = self.resolution
        self.objective_terms(tf.zeros([1, self.sequence_length, r, r, 3]), training=False)
        self.built = True

    def with_precision(self, precision: str) -> HGN:
        """This model computing in `precision` (`ModelConfig.precision`): itself if it already
        does, else a built twin with the same weights (mixed precision keeps float32 variables,
        so the layout is the same). For serving: a float32-trained model answers in bfloat16 on
        hardware with bfloat16 units (`hgn export --precision mixed_bfloat16`), at bfloat16's
        accuracy."""
        import dataclasses

        if precision == self.config.precision:
            return self
        # ModelConfig checks `precision` (a ConfigError naming it).
        twin = HGN(dataclasses.replace(self.config, precision=precision), self.geco_config,
                   seed=self.seed, resolution=self.resolution,
                   sequence_length=self.sequence_length)
        twin.build_all()
        twin.set_weights(self.get_weights())
        return twin

    def get_config(self):
        import dataclasses
        return {**super().get_config(), "config": dataclasses.asdict(self.config),
                "geco": dataclasses.asdict(self.geco_config), "seed": self.seed,
                "resolution": self.resolution, "sequence_length": self.sequence_length}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _as_float_frames(frames):
    frames = tf.convert_to_tensor(frames)
    if frames.dtype == tf.uint8:
        return tf.cast(frames, tf.float32) / 255.0
    return tf.cast(frames, tf.float32)


def _euler_direct(net, q0, p0, dt, n_steps, xla_max_batch=0):
    """Euler steps of a directly predicted vector field; states at 0..n_steps, stacked first."""
    def euler(q, p, carry):
        dq, dp = net(q, p)
        return q + dt * dq, p + dt * dp, carry

    step = integrators.xla_steps(euler, xla_max_batch, q0)

    def body(i, q, p, qs, ps):
        q, p, _ = step(q, p, ())
        return i + 1, q, p, qs.write(i + 1, q), ps.write(i + 1, p)

    n = tf.convert_to_tensor(n_steps, tf.int32)
    qs = tf.TensorArray(q0.dtype, size=n + 1, element_shape=q0.shape).write(0, q0)
    ps = tf.TensorArray(p0.dtype, size=n + 1, element_shape=p0.shape).write(0, p0)
    _, _, _, qs, ps = tf.while_loop(lambda i, *_: i < n, body,
                                    (tf.constant(0), q0, p0, qs, ps))
    return qs.stack(), ps.stack()
