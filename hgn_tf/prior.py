"""Learned priors over the HGN's initial state, fitted to the encoded training set (issue 9).

Why. HGN samples s0 = f_psi(z), z ~ N(0, I). GECO keeps the KL weight tiny (the multiplier on
the reconstruction reaches ~3e5), so the aggregate posterior the decoder and the Hamiltonian were
trained on,

    q(s0) = 1/N sum_n E_{z ~ q_phi(z | x_n)} delta(s0 - f_psi(z)),

is far from the push-forward of N(0, I): a standard-prior sample starts where the dynamics were
never trained, and decodes to faint blobs in several places (measured on the `table1`
autoencode pendulum model: the bob is found in 20% of sample frames; 96% with the default
learned prior, a 16-component full-covariance mixture; `bench/sample_physics.py`, README).
A learned prior is a density p_lambda(s0) fitted to samples of q(s0) after training; sampling
draws s0 ~ p_lambda and integrates from it as usual.

Where. The density is over the flattened initial state s0 = (q0, p0) in R^D, D = 2 x
prod(state_shape) (`HGN.flatten_state`: 2 x 4 x 4 x 8 = 256 for the CPU models, 2d for a vector
latent), not over z: with f_psi, z is a full-resolution map (32 x 32 x 16 = 16,384 numbers),
while s0 is what the dynamics and the decoder read. Training samples: for each of N encoded
sequences, `samples_per_sequence` draws z ~ q_phi(z | x_n) mapped through f_psi (the aggregate
posterior itself, not only its means).

Kinds (`PriorConfig.kind`):

    gmm    p(s) = sum_k pi_k N(s; mu_k, Sigma_k)   (tfd.MixtureSameFamily of
           tfd.MultivariateNormalTriL), fitted by EM (scikit-learn's GaussianMixture, float64) on
           the standardised states u = (s - m) / sigma, then mapped back exactly:
           mu_k = m + sigma * mu'_k, Sigma_k = diag(sigma) Sigma'_k diag(sigma), so `reg_covar`
           (added to every Sigma'_k's diagonal) is relative to each coordinate's spread.
           `covariance` "full" (D (D + 1) / 2 numbers per component) or "diag".
    flow   s = m + sigma * g(u), u ~ N(0, I_D), g a RealNVP (`hgn_tf.flows.realnvp`: affine
           couplings, alternating masks), log p(s) = log N(g^-1((s - m) / sigma))
           + log|det J_{g^-1}| - sum log sigma; fitted by maximum likelihood with `model.fit`
           (Adam) on the same standardised states.

Both are `keras.Model`s with `get_config` and their parameters in Keras weights; they are saved in
the run folder beside the HGN's weights (`save_prior`: `prior.json`, `prior.weights.h5`),
read back by `load_prior`, and exported into the SavedModel's `sample` signature
(`hgn_tf.export`). `fit_run_prior` does it all for a trained run (`hgn fit-prior`).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from hgn_tf import data as data_lib
from hgn_tf.errors import ConfigError, RunError, check, positive_int
from hgn_tf.flows.realnvp import RealNVPConfig, RealNVPFlow
from hgn_tf.train import atomic_write_text, load_run, load_weights, save_weights

tfb = tfp.bijectors
tfd = tfp.distributions

__all__ = ["PRIOR_CONFIG_FILE", "PRIOR_KINDS", "PRIOR_WEIGHTS_FILE", "SAMPLE_PRIORS",
           "FlowPrior", "GaussianMixturePrior", "PriorConfig", "aggregate_posterior", "fit_prior",
           "fit_run_prior", "load_prior", "save_prior"]

PRIOR_KINDS = ("gmm", "flow")
# What a sample starts from (`hgn evaluate --prior`): N(0, I) through f_psi, or a learned prior.
SAMPLE_PRIORS = ("standard", "learned")
COVARIANCES = ("full", "diag")
PRIOR_CONFIG_FILE = "prior.json"
PRIOR_WEIGHTS_FILE = "prior.weights.h5"


@dataclasses.dataclass(frozen=True)
class PriorConfig:
    """How a learned prior is fitted.

    Attributes:
      kind: "gmm" (a Gaussian mixture, EM) or "flow" (a RealNVP, maximum likelihood).
      components: the mixture's components K (gmm).
      covariance: "full" or "diag" (gmm).
      reg_covar: added to the diagonal of every standardised covariance (gmm; EM's floor).
      pca_dim: None (the default: 32 for a full-covariance mixture, else 0), 0 (EM in all D
        dimensions), or r >= 1: EM in the span of the standardised states' r leading principal
        directions W [D, r], and the rest of the space given the mean of the discarded
        eigenvalues as an isotropic variance (probabilistic PCA's maximum-likelihood noise):
        component k is N(W m_k, W S_k W^T + (sigma^2 + reg_covar) (I - W W^T)) in
        standardised units (gmm, full covariance only). r >= D keeps every direction, i.e.
        plain EM. Why: the aggregate posterior lies near the system's low-dimensional phase
        space inside D = 256 dimensions, and K full D x D covariances fitted to a few thousand
        states put mass off it (on the CPU two_body model, 16 components in all 256
        dimensions: both bodies found in 76% of sample frames, their colours mixed; 64
        components in 32 directions: 99%; bench/README).
      coupling_layers, hidden: the RealNVP's couplings and each coupling network's widths (flow).
      steps, batch_size, learning_rate: Adam's schedule (flow).
      samples_per_sequence: draws of z ~ q_phi(z | x) per encoded training sequence.
      seed: seeds the posterior draws, EM's initialisation and the flow's weights and batches.
    """

    kind: str = "gmm"
    components: int = 64
    covariance: str = "full"
    reg_covar: float = 1e-3
    pca_dim: int | None = None
    coupling_layers: int = 4
    hidden: tuple[int, ...] = (256, 256)
    steps: int = 2000
    batch_size: int = 256
    learning_rate: float = 1e-3
    samples_per_sequence: int = 1
    seed: int = 0

    def __post_init__(self):
        check(self.kind in PRIOR_KINDS, "kind", self.kind, f"one of {PRIOR_KINDS}")
        check(self.covariance in COVARIANCES, "covariance", self.covariance,
              f"one of {COVARIANCES}")
        for name in ("components", "coupling_layers", "steps", "batch_size",
                     "samples_per_sequence"):
            positive_int(name, getattr(self, name))
        check(self.pca_dim is None or (isinstance(self.pca_dim, int)
                                       and not isinstance(self.pca_dim, bool)
                                       and self.pca_dim >= 0),
              "pca_dim", self.pca_dim, "None (auto) or an integer >= 0 (0: no PCA)")
        check(not self.pca_dim or (self.kind == "gmm" and self.covariance == "full"), "pca_dim",
              self.pca_dim, f"0 or None unless kind='gmm' and covariance='full' (got "
              f"kind={self.kind!r}, covariance={self.covariance!r})")
        check(isinstance(self.reg_covar, (int, float)) and np.isfinite(self.reg_covar)
              and self.reg_covar > 0, "reg_covar", self.reg_covar, "a finite number > 0")
        check(isinstance(self.learning_rate, (int, float)) and np.isfinite(self.learning_rate)
              and self.learning_rate > 0, "learning_rate", self.learning_rate,
              "a finite number > 0")
        check(isinstance(self.hidden, tuple) and len(self.hidden) > 0
              and all(isinstance(h, int) and not isinstance(h, bool) and h > 0
                      for h in self.hidden), "hidden", self.hidden,
              "a non-empty tuple of positive integers")
        check(isinstance(self.seed, int) and not isinstance(self.seed, bool) and self.seed >= 0,
              "seed", self.seed, "an integer >= 0")

    @property
    def resolved_pca_dim(self) -> int:
        """`pca_dim`, with None resolved: 32 for a full-covariance mixture, else 0."""
        if self.pca_dim is not None:
            return self.pca_dim
        return 32 if self.kind == "gmm" and self.covariance == "full" else 0


def _stateless(seed):
    """An int or a stateless seed pair -> an int32 tensor [2]."""
    if isinstance(seed, int):
        return tf.constant([seed, 0], tf.int32)
    return tf.cast(seed, tf.int32)


class _Density:
    """log_prob, sample and call of a prior, from its `distribution()` (a TFP distribution)."""

    def log_prob(self, x):
        """log p(x) for x [B, D] -> [B]."""
        return self.distribution().log_prob(tf.cast(x, tf.float32))

    def sample(self, n, seed=0):
        """n draws [n, D]; `seed` an int or a stateless seed pair: the same seed, the same draws."""
        return self.distribution().sample(n, seed=_stateless(seed))

    def call(self, x, training=False):
        return self.log_prob(x)


@keras.saving.register_keras_serializable(package="hgn_tf")
class GaussianMixturePrior(_Density, keras.Model):
    """p(s) = sum_k pi_k N(s; mu_k, L_k L_k^T) over s in R^dim (TFP `MixtureSameFamily`).

    The parameters are non-trainable weights (log pi [K], mu [K, dim], the Cholesky factors
    L [K, dim, dim]) set by EM (`set_parameters`, `fit_prior`); a fresh instance is N(0, I) in
    every component.

    Args:
      dim: D, the dimension of s.
      components: K.
    """

    def __init__(self, dim: int, components: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.dim = positive_int("dim", dim)
        self.components = positive_int("components", components)
        k, d = self.components, self.dim
        self.log_weights = self.add_weight(shape=(k,), initializer="zeros", trainable=False,
                                           name="log_weights")
        self.means = self.add_weight(shape=(k, d), initializer="zeros", trainable=False,
                                     name="means")
        eye = np.broadcast_to(np.eye(d, dtype=np.float32), (k, d, d))
        self.scale_trils = self.add_weight(shape=(k, d, d),
                                           initializer=keras.initializers.Constant(eye),
                                           trainable=False, name="scale_trils")
        self.built = True  # every weight exists

    def set_parameters(self, weights, means, covariances) -> None:
        """Set pi [K], mu [K, D] and Sigma [K, D, D] (or its diagonals [K, D])."""
        weights = np.asarray(weights, np.float64)
        means = np.asarray(means, np.float64)
        cov = np.asarray(covariances, np.float64)
        k, d = self.components, self.dim
        check(weights.shape == (k,) and np.all(weights > 0), "weights", weights.shape,
              f"[{k}] positive numbers")
        check(means.shape == (k, d), "means", means.shape, f"of shape [{k}, {d}]")
        if cov.shape == (k, d):
            cov = cov[:, :, None] * np.eye(d)
        check(cov.shape == (k, d, d), "covariances", cov.shape,
              f"of shape [{k}, {d}, {d}] or [{k}, {d}]")
        self.log_weights.assign(np.log(weights / weights.sum()).astype(np.float32))
        self.means.assign(means.astype(np.float32))
        self.scale_trils.assign(np.linalg.cholesky(cov).astype(np.float32))

    def distribution(self) -> tfd.Distribution:
        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=tf.convert_to_tensor(self.log_weights)),
            components_distribution=tfd.MultivariateNormalTriL(
                loc=tf.convert_to_tensor(self.means),
                scale_tril=tf.convert_to_tensor(self.scale_trils)))

    def build_all(self):
        self.built = True

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "components": self.components}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="hgn_tf")
class FlowPrior(_Density, keras.Model):
    """p(s): s = m + sigma * g(u), u ~ N(0, I), g a RealNVP (`hgn_tf.flows.realnvp`).

    m and sigma (the training states' mean and standard deviation, non-trainable weights) are set
    by `set_standardisation` before `fit`; `fit` on batches s [B, D] maximises log p(s).

    Args:
      dim: D.
      coupling_layers, hidden: the RealNVP's couplings and each coupling network's widths.
    """

    def __init__(self, dim: int, coupling_layers: int = 4, hidden=(256, 256), **kwargs):
        super().__init__(**kwargs)
        self.dim = positive_int("dim", dim)
        self.coupling_layers = positive_int("coupling_layers", coupling_layers)
        self.hidden = tuple(hidden)
        self.flow = RealNVPFlow(RealNVPConfig(dim=self.dim, coupling_layers=coupling_layers,
                                              hidden=self.hidden), name="realnvp")
        self.shift = self.add_weight(shape=(self.dim,), initializer="zeros", trainable=False,
                                     name="shift")
        self.scale = self.add_weight(shape=(self.dim,), initializer="ones", trainable=False,
                                     name="scale")
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def set_standardisation(self, mean, std) -> None:
        self.shift.assign(np.asarray(mean, np.float32))
        self.scale.assign(np.asarray(std, np.float32))

    def distribution(self) -> tfd.Distribution:
        standardise = tfb.Chain([tfb.Shift(tf.convert_to_tensor(self.shift)),
                                 tfb.Scale(tf.convert_to_tensor(self.scale))])
        return tfd.TransformedDistribution(self.flow.distribution(), standardise)

    def train_step(self, data):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(self.log_prob(data))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    @property
    def metrics(self):
        return [self.loss_tracker]

    def build_all(self):
        """Create every weight (before `load_weights`)."""
        self.flow.build_all()
        self.log_prob(tf.zeros([1, self.dim]))
        self.built = True

    def get_config(self):
        return {**super().get_config(), "dim": self.dim,
                "coupling_layers": self.coupling_layers, "hidden": self.hidden}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def fit_prior(states, config: PriorConfig | None = None, *, verbose: int = 0):
    """Fit a learned prior to states [N, D] (samples of the aggregate posterior).

    Returns:
      a `GaussianMixturePrior` or a `FlowPrior`.
    """
    from sklearn.mixture import GaussianMixture

    config = config or PriorConfig()
    states = np.asarray(states, np.float64)
    check(states.ndim == 2 and len(states) >= 2 and np.all(np.isfinite(states)), "states",
          f"shape {list(states.shape)}", "a finite array [N >= 2, D]")
    n, d = states.shape
    mean = states.mean(axis=0)
    std = np.maximum(states.std(axis=0), 1e-6)
    u = (states - mean) / std
    if config.kind == "gmm":
        check(config.components <= n, "components", config.components,
              f"at most the number of states ({n})")
        gm = GaussianMixture(config.components, covariance_type=config.covariance,
                             reg_covar=config.reg_covar, random_state=config.seed,
                             max_iter=500)
        if 0 < config.resolved_pca_dim < d:
            means, cov = _fit_pca_mixture(gm, u, config.resolved_pca_dim)
        else:
            gm.fit(u)
            means, cov = gm.means_, gm.covariances_  # cov [K, D, D] or [K, D], standardised
        if config.covariance == "diag":
            cov = cov * std ** 2
        else:
            cov = cov * std[:, None] * std[None, :]
        prior = GaussianMixturePrior(d, config.components)
        prior.set_parameters(gm.weights_, mean + means * std, cov)
        return prior
    keras.utils.set_random_seed(config.seed)
    prior = FlowPrior(d, config.coupling_layers, config.hidden)
    prior.set_standardisation(mean, std)
    prior.build_all()
    prior.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    ds = (tf.data.Dataset.from_tensor_slices(states.astype(np.float32))
          .shuffle(n, seed=config.seed).repeat()
          .batch(min(config.batch_size, n), drop_remainder=True))
    prior.fit(ds, epochs=1, steps_per_epoch=config.steps, shuffle=False, verbose=verbose)
    # The fitted weights in a fresh, uncompiled instance: no optimizer state to save.
    fitted = FlowPrior(d, config.coupling_layers, config.hidden)
    fitted.build_all()
    fitted.set_weights(prior.get_weights())
    return fitted


def _fit_pca_mixture(gm, u, r):
    """EM of `gm` in the r leading principal directions of u [N, D] (centred, standardised);
    returns (means [K, D], covariances [K, D, D]) in u's coordinates, the discarded
    directions given their mean eigenvalue as an isotropic variance (`PriorConfig.pca_dim`)."""
    n, d = u.shape
    _, sing, vt = np.linalg.svd(u, full_matrices=False)  # u is centred (standardised)
    eig = sing ** 2 / n
    w = vt[:r].T  # [D, r]
    # EM's floor (reg_covar, already in S_k) applies to the discarded directions too, so every
    # covariance is >= reg_covar * I, as in plain EM (and positive definite when N <= r).
    noise = float(eig[r:].sum() / (d - r)) + gm.reg_covar
    gm.fit(u @ w)
    means = gm.means_ @ w.T
    residual = noise * (np.eye(d) - w @ w.T)
    cov = np.einsum("ia,kab,jb->kij", w, gm.covariances_, w) + residual
    return means, cov


def aggregate_posterior(model, batches, *, samples_per_sequence: int = 1,
                        seed: int = 0) -> np.ndarray:
    """Samples of q(s0) [N x samples_per_sequence, D]: z ~ q_phi(z | x_n), s0 = f_psi(z).

    Args:
      model: a trained, stochastic `HGN`.
      batches: an iterable of frame batches [B, >=k, H, W, 3] (uint8, or float in [0, 1]), e.g.
        a batched `tf.data.Dataset` of frames; read `samples_per_sequence` times.
      seed: the posterior draws' stateless seeds are (seed, a running batch counter).
    """
    if model.config.deterministic:
        raise ConfigError("A deterministic HGN (`deterministic=True`) has no posterior to fit "
                          "a prior to.", "deterministic")
    positive_int("samples_per_sequence", samples_per_sequence)
    encode = tf.function(lambda x, s: model.flatten_state(
        *model.encode(model.conditioning_frames(x), sample=True, seed=s)[:2]),
        reduce_retracing=True)
    out, counter = [], 0
    for _ in range(samples_per_sequence):
        for x in batches:
            x = tf.convert_to_tensor(x)
            x = tf.cast(x, tf.float32) / (255.0 if x.dtype == tf.uint8 else 1.0)
            out.append(encode(x, tf.constant([seed, counter], tf.int32)).numpy())
            counter += 1
    check(bool(out), "batches", "no batch", "at least one batch of frames")
    return np.concatenate(out)


def save_prior(prior, run_dir, info: dict | None = None) -> pathlib.Path:
    """Write `prior` into `run_dir`: prior.json (its Keras config, plus `info`) and
    prior.weights.h5, each through a temporary file and a rename. Returns the json's path."""
    run_dir = pathlib.Path(run_dir)
    save_weights(prior, run_dir / PRIOR_WEIGHTS_FILE)
    spec = {"prior": keras.saving.serialize_keras_object(prior), "info": info or {}}
    atomic_write_text(run_dir / PRIOR_CONFIG_FILE, json.dumps(spec, indent=2))
    return run_dir / PRIOR_CONFIG_FILE


def load_prior(run_dir):
    """The learned prior saved in `run_dir` (`save_prior`), or None if it has none."""
    run_dir = pathlib.Path(run_dir)
    path = run_dir / PRIOR_CONFIG_FILE
    if not path.exists():
        return None
    try:
        spec = json.loads(path.read_text())
        prior = keras.saving.deserialize_keras_object(spec["prior"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunError(f"`run_dir`: {str(path)!r} is not a prior written by `hgn fit-prior` "
                       f"({str(e).splitlines()[0] if str(e) else type(e).__name__:.200}); "
                       "delete it and fit the prior again.", "run_dir") from None
    prior.build_all()
    load_weights(prior, run_dir / PRIOR_WEIGHTS_FILE)
    return prior


def fit_run_prior(run_dir, config: PriorConfig | None = None, *, max_sequences: int = 4096,
                  out_dir=None, verbose: bool = False):
    """Fit a learned prior to a trained run's encoded training set and save it.

    The first `max_sequences` sequences of the run's training split are encoded
    (`aggregate_posterior`) and the prior is fitted to them; up to 512 sequences of its
    validation split (`DataConfig.validation_fraction`), encoded the same way, score the fit
    out of sample. Scores: the mean log-density per state in nats, and N(0, I)'s on the same
    held-out states for reference.

    Args:
      run_dir: a finished training run of a stochastic HGN.
      out_dir: where to write prior.json / prior.weights.h5 (default: `run_dir`).
    Returns:
      (prior, report) with report = {"kind", "dim", "n_fit", "log_prob_fit" and, with a
      validation split, "n_holdout", "log_prob_holdout", "log_prob_standard_holdout"}.
    """
    config = config or PriorConfig()
    max_sequences = positive_int("max_sequences", max_sequences)
    run_dir = pathlib.Path(run_dir)
    cfg, model = load_run(run_dir)
    if cfg.model.deterministic:
        raise ConfigError(f"`run_dir` {str(run_dir)!r} holds a deterministic HGN: it has no "
                          "posterior and cannot sample, so it has no prior to fit.", "run_dir")

    def batches(split, limit):
        ds = data_lib.load(cfg.data, split).take(limit).batch(64)
        return ds.map(lambda ex: ex["frames"]).prefetch(2)

    states = aggregate_posterior(model, batches("train", max_sequences),
                                 samples_per_sequence=config.samples_per_sequence,
                                 seed=config.seed)
    prior = fit_prior(states, config, verbose=2 if verbose else 0)
    report = {"kind": config.kind, "dim": int(states.shape[1]), "n_fit": int(len(states)),
              "log_prob_fit": _mean_log_prob(prior, states)}
    if cfg.data.validation_fraction > 0:
        held = aggregate_posterior(model, batches("validation", 512), seed=config.seed + 1)
        standard = tfd.MultivariateNormalDiag(tf.zeros(held.shape[1]))
        report.update(n_holdout=int(len(held)), log_prob_holdout=_mean_log_prob(prior, held),
                      log_prob_standard_holdout=float(tf.reduce_mean(standard.log_prob(held))))
    info = {"config": dataclasses.asdict(config), "max_sequences": max_sequences,
            "system": cfg.data.system, **report}
    save_prior(prior, out_dir if out_dir is not None else run_dir, info)
    return prior, report


def _mean_log_prob(prior, states, batch: int = 1024) -> float:
    values = [prior.log_prob(states[i:i + batch]).numpy() for i in range(0, len(states), batch)]
    return float(np.mean(np.concatenate(values)))
