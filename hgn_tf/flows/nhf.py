"""Neural Hamiltonian Flow (HGN section 3.3, appendix A.2): a normalising flow made of leapfrog
steps of learned separable Hamiltonians, trained by the ELBO of HGN equation 6.

The state is s = (q, p), q in R^d (the data), p in R^d (a latent momentum, as in HMC).

    s_0 ~ pi                                    base: N(0, I_2d) or a soft-uniform (HGN sec. 4)
    s_i = LF_{H_i}^{dt}(s_{i-1}),  i = 1..T      one leapfrog step of H_i = K_i(p) + V_i(q)
    x = q_T                                     a sample of the model

T = `leapfrog_steps` (1, 2 or 3; "two suffice", HGN A.2). Each step has its own Hamiltonian
(HGN 3.3: "each step of the flow ... can be parametrised by a different Hamiltonian"); K_i and
V_i are Softplus MLPs [d, 128, 128, 1] (Softplus: training differentiates dH twice, and ReLU's
second derivative vanishes). The leapfrog step is `hgn_tf.integrators.get("leapfrog")`:
dq/dt = dH/dp, dp/dt = -dH/dq, both from the Hamiltonian by autodiff.

Why the log-determinant is 0. For separable H each kick (p -= h/2 dV/dq(q)) and drift
(q += h dK/dp(p)) is a shear whose Jacobian is block-triangular with identity diagonal blocks
(det 1), so every leapfrog step, and the flow, preserves volume exactly (not only to O(dt^2) as
eq. 5's continuous-time argument gives), and the inverse is the same steps with -dt in reverse
order, also exact. Hence the joint density of (q, p) is exact and cheap:

    log p(q_T, p_T) = log pi(LF_{H_1}^{-dt} o ... o LF_{H_T}^{-dt}(q_T, p_T))

and `HamiltonianFlow` is a TFP bijector with `forward_log_det_jacobian = 0`; `joint()` is the
`tfd.TransformedDistribution` of the base through it (it composes with the rest of TFP).

The marginal log p(x) = log int p(x, p) dp is intractable; with f_psi(p | x) =
N(mu(x), diag sigma(x)^2) (ReLU MLPs [d, 128, 128, d]; no ReLU on the outputs; sigma through a
softplus) it is bounded below by the ELBO (HGN eq. 6, proof in A.7):

    ELBO(x) = E_{p ~ f_psi(p|x)} [ log p(x, p) - log f_psi(p | x) ] <= log p(x)

and the K-sample importance-weighted bound (Burda et al. 2016), tighter and increasing in K:

    IWAE_K(x) = E [ log (1/K) sum_k p(x, p_k) / f_psi(p_k | x) ],  p_k ~ f_psi(p | x)

Training maximises the ELBO with respect to the Hamiltonians AND f_psi (the public PyTorch
attempt minimised it and left f_psi out of its optimiser). Adam 3e-4 (HGN A.2) is the
training function's default.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from hgn_tf import integrators
from hgn_tf.config import dataclass_from_dict
from hgn_tf.errors import ConfigError, check, positive_int
from hgn_tf.flows.soft_uniform import SoftUniform

tfb = tfp.bijectors
tfd = tfp.distributions

__all__ = ["BASES", "HamiltonianFlow", "MomentumEncoder", "NHFConfig", "NeuralHamiltonianFlow",
           "SeparableHamiltonian"]

BASES = ("normal", "soft_uniform")


@dataclasses.dataclass(frozen=True)
class NHFConfig:
    """A Neural Hamiltonian Flow's architecture.

    Attributes:
        dim: d, the data's dimension (q and p are each d-dimensional).
        leapfrog_steps: T, the flow's leapfrog steps, each with its own Hamiltonian.
        hidden: hidden widths of K, V and f_psi's MLPs (HGN A.2: 128, 128).
        dt: the leapfrog step size (> 0; sampling runs +dt, density evaluation -dt).
        base: "normal" (N(0, I) on (q, p)) or "soft_uniform" (HGN section 4, per coordinate).
        base_width: the soft-uniform's plateau width (HGN's sigma); only for soft_uniform.
        base_sharpness: the soft-uniform's beta; only for soft_uniform.
    """

    dim: int = 2
    leapfrog_steps: int = 2
    hidden: tuple[int, ...] = (128, 128)
    dt: float = 1.0
    base: str = "normal"
    base_width: float = 6.0
    base_sharpness: float = 4.0

    def __post_init__(self):
        positive_int("dim", self.dim)
        positive_int("leapfrog_steps", self.leapfrog_steps)
        check(isinstance(self.hidden, tuple) and len(self.hidden) > 0
              and all(isinstance(h, int) and not isinstance(h, bool) and h > 0
                      for h in self.hidden),
              "hidden", self.hidden, "a non-empty tuple of positive integers")
        check(isinstance(self.dt, (int, float)) and self.dt > 0, "dt", self.dt,
              "a positive number")
        check(self.base in BASES, "base", self.base, f"one of {BASES}")
        check(isinstance(self.base_width, (int, float)) and self.base_width > 0,
              "base_width", self.base_width, "a positive number")
        check(isinstance(self.base_sharpness, (int, float)) and self.base_sharpness > 0,
              "base_sharpness", self.base_sharpness, "a positive number")


def _mlp(hidden, out, activation, name, out_bias=True):
    layers = [keras.layers.Dense(h, activation=activation, name=f"{name}_dense{i}")
              for i, h in enumerate(hidden)]
    return layers + [keras.layers.Dense(out, use_bias=out_bias, name=f"{name}_out")]


def _run(layers, x):
    for layer in layers:
        x = layer(x)
    return x


@keras.saving.register_keras_serializable(package="hgn_tf")
class SeparableHamiltonian(keras.layers.Layer):
    """H(q, p) = K(p) + V(q), each a Softplus MLP [d, *hidden, 1]; returns [B] energies."""

    def __init__(self, hidden=(128, 128), **kwargs):
        super().__init__(**kwargs)
        self.hidden = tuple(hidden)
        # No bias on the energies: a constant changes no derivative (it would get no gradient).
        self.kinetic = _mlp(self.hidden, 1, "softplus", "kinetic", out_bias=False)
        self.potential = _mlp(self.hidden, 1, "softplus", "potential", out_bias=False)

    def call(self, q, p):
        return (_run(self.kinetic, p) + _run(self.potential, q))[..., 0]

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden}


@keras.saving.register_keras_serializable(package="hgn_tf")
class MomentumEncoder(keras.layers.Layer):
    """f_psi(p | q) = N(mu(q), diag sigma(q)^2): two ReLU MLPs [d, *hidden, d].

    No ReLU on either output (the public PyTorch code's forced mu >= 0); sigma = softplus(.) +
    1e-4, a standard deviation (that code passed a std where a covariance was expected).
    """

    def __init__(self, dim, hidden=(128, 128), **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.hidden = tuple(hidden)
        self.mu = _mlp(self.hidden, self.dim, "relu", "mu")
        self.sigma = _mlp(self.hidden, self.dim, "relu", "sigma")

    def call(self, q):
        """The distribution f_psi(. | q): a TFP MultivariateNormalDiag with batch shape [B]."""
        scale = tf.math.softplus(_run(self.sigma, q)) + 1e-4
        return tfd.MultivariateNormalDiag(loc=_run(self.mu, q), scale_diag=scale)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "hidden": self.hidden}


class HamiltonianFlow(tfb.Bijector):
    """(q, p) -> one leapfrog step of each H_1, ..., H_T in turn: a volume-preserving bijector.

    Events are vectors s = concat(q, p) of size 2d. forward: steps H_1..H_T with +dt; inverse:
    H_T..H_1 with -dt (exact for separable H, up to rounding). log|det J| = 0 (see the module
    docstring), declared with `is_constant_jacobian=True`.

    Args:
        hamiltonians: callables H_i(q, p) -> [B] energies, separable (K(p) + V(q)) for the
            volume preservation and exact inverse to hold.
        dim: d.
        dt: the leapfrog step size.
    """

    def __init__(self, hamiltonians, dim: int, dt: float, validate_args=False,
                 name="hamiltonian_flow"):
        parameters = dict(locals())
        self._hamiltonians = tuple(hamiltonians)
        self._dim = int(dim)
        self._dt = float(dt)
        self._leapfrog = integrators.get("leapfrog")
        super().__init__(forward_min_event_ndims=1, is_constant_jacobian=True,
                         validate_args=validate_args, parameters=parameters, name=name)

    def _steps(self, s, hamiltonians, dt):
        d = self._dim
        q, p = s[..., :d], s[..., d:]
        shape = tf.shape(q)
        # The integrator works on [B, d]: flatten any sample/batch dimensions.
        q, p = tf.reshape(q, [-1, d]), tf.reshape(p, [-1, d])
        for h in hamiltonians:
            q, p = self._leapfrog.step(h, q, p, dt)
        return tf.concat([tf.reshape(q, shape), tf.reshape(p, shape)], axis=-1)

    def _forward(self, x):
        return self._steps(x, self._hamiltonians, self._dt)

    def _inverse(self, y):
        return self._steps(y, self._hamiltonians[::-1], -self._dt)

    def _forward_log_det_jacobian(self, x):
        return tf.zeros([], x.dtype)

    def _inverse_log_det_jacobian(self, y):
        return tf.zeros([], y.dtype)


def _as_seed(seed):
    """A stateless seed pair from an int or a pair."""
    if isinstance(seed, int):
        return tf.constant([seed, 0], tf.int32)
    return tf.cast(seed, tf.int32)


@keras.saving.register_keras_serializable(package="hgn_tf")
class NeuralHamiltonianFlow(keras.Model):
    """The NHF density model over x in R^d (see the module docstring).

    `fit` on batches of samples x [B, d] maximises the single-sample ELBO (loss = -ELBO, in nats
    per sample); the metric `elbo` is reported.

    Args:
        config: `NHFConfig` (or its dict).
        seed: seeds the momentum samples of training (`keras.random.SeedGenerator`).
        hamiltonians: optional callables H_i(q, p) -> [B], one per leapfrog step, used instead of
            the learned networks (a known Hamiltonian: e.g. a quadratic one, where the flow is
            linear and log p(x) is known in closed form). Such a model has no Hamiltonian
            weights and cannot be rebuilt from `get_config`.
    """

    def __init__(self, config: NHFConfig | dict | None = None, seed: int = 0,
                 hamiltonians=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = dataclass_from_dict(NHFConfig, config)
        self.config = config or NHFConfig()
        self.seed = int(seed)
        c = self.config
        if hamiltonians is None:
            self.hamiltonian_nets = [SeparableHamiltonian(c.hidden, name=f"hamiltonian_{i}")
                                     for i in range(c.leapfrog_steps)]
            self._given_hamiltonians = None
        else:
            hamiltonians = tuple(hamiltonians)
            if len(hamiltonians) != c.leapfrog_steps or not all(map(callable, hamiltonians)):
                raise ConfigError(
                    f"`hamiltonians` must be {c.leapfrog_steps} callables (config.leapfrog_steps),"
                    f" got {hamiltonians!r:.80}.", "hamiltonians")
            self.hamiltonian_nets = []
            self._given_hamiltonians = hamiltonians
        self.encoder = MomentumEncoder(c.dim, c.hidden, name="f_psi")
        self.seed_generator = keras.random.SeedGenerator(self.seed, name="momentum_seed")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.elbo_tracker = keras.metrics.Mean(name="elbo")

    # ------------------------------------------------------------------ the distribution
    def base_distribution(self) -> tfd.Distribution:
        """pi over s = (q, p), event shape [2d]."""
        c = self.config
        n = 2 * c.dim
        if c.base == "normal":
            return tfd.MultivariateNormalDiag(loc=tf.zeros(n), scale_diag=tf.ones(n))
        return tfd.Independent(
            SoftUniform(width=tf.fill([n], float(c.base_width)),
                        sharpness=tf.fill([n], float(c.base_sharpness))),
            reinterpreted_batch_ndims=1)

    def flow(self) -> HamiltonianFlow:
        """The bijector s_0 -> s_T (forward: sampling; inverse: density evaluation)."""
        hamiltonians = self._given_hamiltonians or tuple(self.hamiltonian_nets)
        return HamiltonianFlow(hamiltonians, self.config.dim, self.config.dt)

    def joint(self) -> tfd.Distribution:
        """The exact joint density of (q_T, p_T): the base through the flow (a TFP distribution)."""
        return tfd.TransformedDistribution(self.base_distribution(), self.flow())

    def forward(self, s0):
        """s_0 [.., 2d] -> s_T (the flow's forward map)."""
        return self.flow().forward(s0)

    def backward(self, s):
        """s_T [.., 2d] -> s_0 (the exact inverse of `forward`)."""
        return self.flow().inverse(s)

    def posterior(self, x) -> tfd.Distribution:
        """f_psi(p | x), batch shape [B], event shape [d]."""
        return self.encoder(tf.convert_to_tensor(x, tf.float32))

    def sample(self, n: int, seed=None):
        """n samples x = q_T of the model, [n, d]: the flow run forward from the base."""
        seed = _as_seed(self.seed_generator.next() if seed is None else seed)
        s0 = self.base_distribution().sample(n, seed=seed)
        return self.forward(s0)[..., :self.config.dim]

    def importance_log_weights(self, x, n_samples: int, seed=None):
        """log p(x, p_k) - log f_psi(p_k | x) for p_k ~ f_psi(p | x): [n_samples, B]."""
        x = tf.convert_to_tensor(x, tf.float32)
        seed = _as_seed(self.seed_generator.next() if seed is None else seed)
        f = self.posterior(x)
        p = f.sample(n_samples, seed=seed)                                   # [K, B, d]
        xk = tf.broadcast_to(x, tf.shape(p))
        return self.joint().log_prob(tf.concat([xk, p], axis=-1)) - f.log_prob(p)

    def elbo(self, x, n_samples: int = 1, seed=None):
        """The ELBO of HGN eq. 6 per x [B], a Monte Carlo mean over `n_samples` momenta."""
        return tf.reduce_mean(self.importance_log_weights(x, n_samples, seed), axis=0)

    log_prob_lower_bound = elbo

    def log_prob_importance_weighted(self, x, n_samples: int, seed=None):
        """The IWAE estimate log (1/K) sum_k p(x, p_k) / f_psi(p_k | x) per x [B], K = n_samples.

        Its expectation is a lower bound on log p(x) that rises with K (to log p(x) as K -> inf).
        """
        log_w = self.importance_log_weights(x, n_samples, seed)
        return tf.reduce_logsumexp(log_w, axis=0) - tf.math.log(float(n_samples))

    # ------------------------------------------------------------------ keras
    def call(self, x, training=False):
        """The single-sample ELBO per x [B] (builds every weight)."""
        return self.elbo(x)

    def train_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        with tf.GradientTape() as tape:
            elbo = tf.reduce_mean(self.elbo(x))
            loss = -elbo  # maximise the ELBO: every trainable weight, f_psi's included
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        return self._update_metrics(loss, elbo)

    def test_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        elbo = tf.reduce_mean(self.elbo(x))
        return self._update_metrics(-elbo, elbo)

    def _update_metrics(self, loss, elbo):
        self.loss_tracker.update_state(loss)
        self.elbo_tracker.update_state(elbo)
        return {"loss": self.loss_tracker.result(), "elbo": self.elbo_tracker.result()}

    @property
    def metrics(self):
        return [self.loss_tracker, self.elbo_tracker]

    def build_all(self):
        """Create every weight (before `load_weights`)."""
        self.elbo(tf.zeros([1, self.config.dim]), seed=0)
        self.built = True

    def get_config(self):
        return {**super().get_config(), "config": dataclasses.asdict(self.config),
                "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
