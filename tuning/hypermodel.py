"""The GECO search space as a `keras_tuner.HyperModel`, and the search objective.

`build(hp)` only samples values (`config_from_hp`, a pure function of `hp` and the base config) and
calls the ordinary `hgn_tf.train.build_model` on the resulting typed `RunConfig`; `fit` forwards
everything to `model.fit` and turns the history into the objective.

Search space
------------

`hgn_tf.tuning.space.SEARCH_SPACE` is the one definition: `config_from_hp` registers it, and
`search_space_table()` prints it (`hgn tune --help` shows that table). Names are the
`GecoConfig` / `TrainConfig` fields they set; the learning rate is searched only with
`tune_learning_rate=True`, and its default is the base config's.

The defaults are the PyTorch reproduction's GECO settings (Balsells Rodas et al., ReScience C 7(2),
2021: alpha 0.99, kappa 0.033, lambda_0 1, nu 0.1), so `config_from_hp(HyperParameters(), base)`
is the reproduction's configuration. The ranges:

- kappa (per-pixel tolerance, constraint recon <= kappa^2): one decade around both published
  values, the reproduction's 0.033 and DeepMind's per-element MSE tolerance 1e-3 (kappa ~ 0.032).
  kappa^2 then spans 1e-4 .. 1e-2, i.e. from "sharper than HGN's reported test MSE (~1e-3)" to
  "a blurry mean image is good enough".
- alpha (moving average of the constraint): the two published choices, 0 (DeepMind: no averaging)
  and 0.99 (reproduction), and 0.9 between them. A choice, not a range: the useful values differ
  by their time constant 1 / (1 - alpha) = 1, 10, 100 steps.
- initial_multiplier: from a decade below the reproduction's 1 up to 1e6. In these units
  (per-pixel MSE against nats per latent location) the reconstruction only competes with the KL
  when lambda is ~1e4-1e5 (measured on pendulum, `small` preset, 750 steps: beta = 1/lambda =
  1e-3 collapsed the posterior to KL 0.05 nats/location at the mean-frame error; beta = 1e-5 kept
  KL ~3-9 and beat the mean frame), and GECO moves log(lambda) by only nu * C_ma (~1e-4) per
  step, so a short trial must be able to start there.
- nu (multiplier update rate): the reproduction grid-searched nu in {0.1, 0.05, 0.01}; the range
  covers that grid and extends to 1 (ten times faster adaptation), since short tuning trials give
  GECO few steps to move lambda (lambda changes by a factor exp(nu * C_ma) per step).
- mode / beta: the reproduction found GECO "surprisingly brittle" and fell back to a fixed
  multiplier (a beta-VAE), so that fallback competes in the same search. GECO's equilibrium is a
  beta-VAE with beta = 1 / lambda; with per-pixel MSE ~1e-3 and a KL of order 1-10 nats per
  location, beta >~ 1e-3 lets the KL swamp the reconstruction (posterior collapse, measured above)
  and beta -> 0 is a plain autoencoder, hence [1e-6, 1]; the default 1e-3 is the range's
  log-centre.
- learning_rate (optional, off by default so that the search compares GECO settings only): from
  below the paper's Adam 1.5e-4 to 3e-3, above the `small` preset's 1e-3.

The GECO parameters are conditional on mode == geco (and beta on fixed_beta) so that a Bayesian
oracle does not spend dimensions on values a trial ignores; inactive fields keep the base config's
values.

Objective
---------

    score = val_recon                          if kl_min <= val_kl <= kl_max
          = val_recon * penalty                otherwise             (objective: minimise)

with val_recon the validation per-pixel MSE and val_kl the validation KL per latent location (the
model's logged `val_recon`, `val_kl`) after the trial's last epoch. A KL below `kl_min` (default
1e-3 nats per location) means the posterior has collapsed onto the prior -- the latent carries no
information about the frames; one above `kl_max` (default 1e3) means the posterior is exploding.
Such a trial is penalised (default x10) rather than reported as failed: it still gives a finite,
ordered value to Bayesian optimisation's Gaussian process (a FAILED trial tells the oracle
nothing) and keras-tuner's `max_consecutive_failed_trials` is not spent on it.

A diverged trial -- a non-finite loss / recon / KL, or a GECO multiplier at (or beyond) its clip
bound (`hgn_tf.geco.diverged`) -- raises `keras_tuner.errors.FailedTrialError`: keras-tuner records
it as FAILED and the search goes on.
"""

from __future__ import annotations

import dataclasses
import math

import keras
import keras_tuner
from hgn_tf.tuning.space import LEARNING_RATE_RANGE, SEARCH_SPACE, search_space_table

from hgn_tf import geco as geco_lib
from hgn_tf import train as train_lib
from hgn_tf.config import RunConfig
from hgn_tf.errors import ConfigError

__all__ = [
    "LEARNING_RATE_RANGE",
    "OBJECTIVE",
    "SEARCH_SPACE",
    "GecoHyperModel",
    "KLBound",
    "config_from_hp",
    "failure_reason",
    "score",
    "search_space_table",
]

OBJECTIVE = keras_tuner.Objective("val_score", direction="min")

def config_from_hp(hp: keras_tuner.HyperParameters, base: RunConfig, *,
                   tune_learning_rate: bool = False) -> RunConfig:
    """The `RunConfig` of one point of the search space (registers the space in `hp`).

    Pure: the result depends only on `hp`'s values and `base`. With a fresh
    `keras_tuner.HyperParameters()` every value is its default (see the module docstring).

    Args:
      hp: the trial's hyperparameters.
      base: the config every other field comes from (data, model, train except the learning rate).
      tune_learning_rate: also sample `train.learning_rate` (default: keep `base`'s).

    Returns:
      `base` with its `geco` (and optionally `train.learning_rate`) replaced.

    Raises:
      ConfigError: if `tune_learning_rate` and `base.train.learning_rate` lies outside
        `LEARNING_RATE_RANGE` (it is the default of that hyperparameter).
    """
    sections = {"geco": {}, "train": {}}
    for h in SEARCH_SPACE:
        if h.section == "train":
            if not tune_learning_rate:
                continue
            default = getattr(base.train, h.name)
            low, high = h.values
            if not low <= default <= high:
                raise ConfigError(
                    f"`base.train.{h.name}` must lie in {h.values} to be the default of the "
                    f"tuned {h.name}, got {default!r}; pick a preset or config inside it, or do "
                    f"not tune it.", f"train.{h.name}")
            sections["train"][h.name] = h.register(hp, default)
            continue
        value = h.register(hp)
        if value is not None:  # None: inactive, keep base's
            sections["geco"][h.name] = value
    geco, train = sections["geco"], sections["train"]
    return base.replace(geco=geco, train=train)


@dataclasses.dataclass(frozen=True)
class KLBound:
    """The objective's bound on the validation KL (nats per latent location).

    Attributes:
      kl_min: below this the posterior has collapsed onto the prior.
      kl_max: above this the posterior is exploding.
      penalty: factor (>= 1) on val_recon of a trial outside [kl_min, kl_max].
    """

    kl_min: float = 1e-3
    kl_max: float = 1e3
    penalty: float = 10.0

    def __post_init__(self):
        for name in ("kl_min", "kl_max", "penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ConfigError(f"KLBound.{name} must be a finite number, got {value!r}.", name)
        if not 0 <= self.kl_min < self.kl_max:
            raise ConfigError(f"KLBound needs 0 <= kl_min < kl_max, got kl_min={self.kl_min!r}, "
                              f"kl_max={self.kl_max!r}.", "kl_min")
        if self.penalty < 1:
            raise ConfigError(f"KLBound.penalty must be >= 1 (a penalty), got {self.penalty!r}.",
                              "penalty")

    def contains(self, kl: float) -> bool:
        return self.kl_min <= kl <= self.kl_max


def score(val_recon: float, val_kl: float, bound: KLBound = KLBound()) -> float:
    """The search objective (minimised): val_recon, times `bound.penalty` if val_kl is out of bound.

    Raises:
      ConfigError: for a non-finite or negative val_recon, or a non-finite val_kl (a diverged
        trial is caught before scoring, by `failure_reason`).
    """
    if not math.isfinite(val_recon) or val_recon < 0:
        raise ConfigError(f"`val_recon` must be a finite number >= 0, got {val_recon!r}.")
    if not math.isfinite(val_kl):
        raise ConfigError(f"`val_kl` must be finite, got {val_kl!r}.")
    return float(val_recon) if bound.contains(val_kl) else float(val_recon) * bound.penalty


def failure_reason(history: dict, multiplier: float, geco: geco_lib.GecoConfig) -> str | None:
    """Why a trained trial counts as diverged, or None.

    Args:
      history: `History.history` ({metric: [value per epoch]}).
      multiplier: the GECO multiplier after training.
      geco: the trial's `GecoConfig` (its clip bounds).
    """
    for key in ("loss", "recon", "kl", "val_loss", "val_recon", "val_kl"):
        for epoch, value in enumerate(history.get(key, [])):
            if not math.isfinite(value):
                return f"non-finite {key} ({value}) at epoch {epoch}"
    if bool(geco_lib.diverged(multiplier, geco)):
        return (f"GECO multiplier {multiplier:.6g} at a clip bound {geco.clip} or not finite "
                f"(mode={geco.mode}, kappa={geco.kappa:.4g}, nu={geco.nu:.4g})")
    return None


class GecoHyperModel(keras_tuner.HyperModel):
    """GECO / fixed-beta settings of an HGN as a keras-tuner search space.

    Args:
      base: the `RunConfig` every trial starts from (architecture, data, training budget, seed).
      tune_learning_rate: also search Adam's learning rate.
      kl_bound: the objective's KL bound (`KLBound`).
    """

    def __init__(self, base: RunConfig, *, tune_learning_rate: bool = False,
                 kl_bound: KLBound = KLBound(), name: str = "hgn_geco"):
        super().__init__(name=name, tunable=True)
        if not isinstance(base, RunConfig):
            raise TypeError(f"`base` must be a RunConfig, got {type(base).__name__}: {base!r}.")
        if not isinstance(kl_bound, KLBound):
            raise TypeError(f"`kl_bound` must be a KLBound, got {type(kl_bound).__name__}.")
        self.base = base
        self.tune_learning_rate = bool(tune_learning_rate)
        self.kl_bound = kl_bound
        config_from_hp(keras_tuner.HyperParameters(), base,
                       tune_learning_rate=self.tune_learning_rate)  # fail now, not in trial 1

    def config(self, hp: keras_tuner.HyperParameters) -> RunConfig:
        return config_from_hp(hp, self.base, tune_learning_rate=self.tune_learning_rate)

    def build(self, hp):
        return train_lib.build_model(self.config(hp))

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        """`model.fit(*args, **kwargs)` (Hyperband passes `epochs` / `initial_epoch`), then the
        objective: {"val_score", "val_recon", "val_kl", "recon", "kl", "multiplier"}.

        Raises:
          keras_tuner.errors.FailedTrialError: the trial diverged (see `failure_reason`).
          keras_tuner.errors.FatalValueError: no validation metrics (pass `validation_data`).
        """
        callbacks = [*(callbacks or []), keras.callbacks.TerminateOnNaN(),
                     train_lib.Curriculum(self.config(hp))]
        history = model.fit(*args, callbacks=callbacks, **kwargs).history
        multiplier = float(model.geco_multiplier.numpy())
        reason = failure_reason(history, multiplier, model.geco_config)
        if reason is not None:
            raise keras_tuner.errors.FailedTrialError(f"Trial diverged: {reason}.")
        if not history.get("val_recon"):
            raise keras_tuner.errors.FatalValueError(
                "No `val_recon` in the training history: the search needs `validation_data` "
                "(and `validation_steps`) in its fit arguments.")
        last = {k: float(v[-1]) for k, v in history.items() if v}
        return {
            "val_score": score(last["val_recon"], last["val_kl"], self.kl_bound),
            "val_recon": last["val_recon"],
            "val_kl": last["val_kl"],
            "recon": last["recon"],
            "kl": last["kl"],
            "multiplier": multiplier,
        }
