"""GECO (Rezende & Viola 2018) as used by HGN: the arithmetic as pure functions, plus its config.

GECO turns "minimise the KL subject to a reconstruction constraint" into a Lagrangian whose
multiplier lambda adapts during training. With recon the reconstruction error of the batch (a
mean over pixels and channels, so that kappa reads as a per-pixel tolerance: recon <= kappa^2):

    C_t      = recon_t - kappa^2                               constraint, <= 0 when met
    C_ma_t   = C_t                                    if t == 0
             = alpha * C_ma_{t-1} + (1 - alpha) * C_t  otherwise
    loss_t   = KL_t + lambda_t * (C_t + stop_grad(C_ma_t - C_t))
    lambda_{t+1} = clip(lambda_t * exp(nu * stop_grad(C_ma_t)), clip[0], clip[1])

- The loss has the VALUE KL + lambda * C_ma but the GRADIENT of KL + lambda * C_t: the moving
  average smooths the multiplier's signal without delaying the gradient.
- The loss uses the current lambda_t; the updated lambda_{t+1} takes effect at the next step.
  lambda is not trained by the optimiser: it rises while the constraint is violated (C_ma > 0)
  and falls while it is met (C_ma < 0).
- The multiplier sits on the reconstruction side. Dividing the loss by lambda gives
  C + KL / lambda, i.e. a beta-VAE with beta = 1 / lambda (up to the constant kappa^2).
- Initialisation of the moving average (a choice; the paper leaves it open): at the very first
  step (step == 0) C_ma is set to C_0 itself rather than decayed from an arbitrary initial
  value, so the average is not biased toward 0 early on.

Fixed-beta mode (the fallback of the HGN reproduction, which found GECO brittle):

    loss_t = recon_t + beta * KL_t

The multiplier is returned unchanged; the moving average of C is still tracked for logging.

The state (C_ma, lambda) is not held here: the caller stores it (in the model, as non-trainable
weights) and feeds it back at every step.

Defaults are those of the PyTorch reproduction (Balsells Rodas, Canal Anton, Taschin,
"[Re] Hamiltonian Generative Networks", ReScience C 7(2), 2021): alpha = 0.99, kappa = 0.033,
lambda_0 = 1, nu = 0.1, clip = (1e-10, 1e10). DeepMind's code instead uses alpha = 0 and a
per-element tolerance of 0.001 on the MSE (kappa^2 = 0.001, kappa ~ 0.0316).

References:
    Rezende, Viola. Taming VAEs. arXiv:1810.00597, 2018 (GECO, algorithm 1).
    Toth et al. Hamiltonian Generative Networks. ICLR 2020.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import tensorflow as tf

from hgn_tf.errors import ConfigError

__all__ = ["MODES", "GecoConfig", "GecoStep", "diverged", "evaluation_loss", "geco_update"]

MODES = ("geco", "fixed_beta")


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class GecoConfig:
    """How the KL and the reconstruction error are balanced.

    Attributes:
        mode: "geco" (adaptive multiplier) or "fixed_beta" (loss = recon + beta * KL).
        kappa: per-pixel tolerance, > 0; the constraint is recon - kappa^2 <= 0.
        alpha: decay of the moving average of the constraint, in [0, 1); 0 means no averaging.
        initial_multiplier: lambda_0, strictly inside the `clip` interval.
        nu: multiplier update rate, > 0: lambda <- lambda * exp(nu * C_ma).
        clip: (low, high) bounds of lambda, 0 < low < high < inf.
        beta: weight on the KL in fixed-beta mode, >= 0 (unused in "geco" mode).

    Raises:
        ConfigError: naming the field, the value and the allowed range, for any invalid field.
    """

    mode: str = "geco"
    kappa: float = 0.033
    alpha: float = 0.99
    initial_multiplier: float = 1.0
    nu: float = 0.1
    clip: tuple = (1e-10, 1e10)
    beta: float = 1.0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"GecoConfig.mode must be one of {MODES}, got {self.mode!r}.",
                              "geco.mode")
        self._check("kappa", lambda v: 0 < v < math.inf, "a finite number > 0")
        self._check("alpha", lambda v: 0 <= v < 1, "a number in [0, 1)")
        self._check("nu", lambda v: 0 < v < math.inf, "a finite number > 0")
        self._check("beta", lambda v: 0 <= v < math.inf, "a finite number >= 0")
        clip = self.clip
        if (
            not isinstance(clip, (tuple, list))
            or len(clip) != 2
            or not all(_is_real(v) for v in clip)
            or not 0 < clip[0] < clip[1] < math.inf
        ):
            raise ConfigError(
                f"GecoConfig.clip must be a pair (low, high) with 0 < low < high < inf, "
                f"got {clip!r}.",
                "geco.clip",
            )
        object.__setattr__(self, "clip", (float(clip[0]), float(clip[1])))
        low, high = self.clip
        self._check(
            "initial_multiplier",
            lambda v: low < v < high,
            f"a number strictly inside clip = ({low!r}, {high!r})",
        )

    def _check(self, field: str, is_valid, allowed: str):
        value = getattr(self, field)
        if not _is_real(value) or not is_valid(value):
            raise ConfigError(f"GecoConfig.{field} must be {allowed}, got {value!r}.",
                              f"geco.{field}")


class GecoStep(NamedTuple):
    """Result of one `geco_update`.

    Attributes:
        loss: scalar loss to minimise.
        constraint: C_t = recon - kappa^2 of this step (for logging).
        constraint_ma: updated moving average C_ma_t, to store for the next step.
        multiplier: lambda_{t+1}, to store for the next step (unchanged in fixed-beta mode).
    """

    loss: tf.Tensor
    constraint: tf.Tensor
    constraint_ma: tf.Tensor
    multiplier: tf.Tensor


def _as_dtype(value, dtype):
    # dtype_hint first: tf.cast(0.7, tf.float64) would round 0.7 to float32 on the way.
    return tf.cast(tf.convert_to_tensor(value, dtype_hint=dtype), dtype)


def geco_update(recon, kl, constraint_ma, multiplier, step, config: GecoConfig) -> GecoStep:
    """One GECO (or fixed-beta) step: the loss and the next (C_ma, lambda). Pure: no state.

    See the module docstring for the equations. Gradients flow into the loss through recon (via
    C_t) and kl only; constraint_ma and multiplier are treated as constants.

    Args:
        recon: scalar reconstruction error of the batch (mean squared error per pixel).
        kl: scalar KL divergence term.
        constraint_ma: C_ma_{t-1}, the stored moving average (ignored when step == 0).
        multiplier: lambda_t, the stored multiplier.
        step: integer scalar, the training step t (0 at the first step).
        config: a `GecoConfig`.

    Returns:
        A `GecoStep(loss, constraint, constraint_ma, multiplier)`, all in recon's dtype.

    Raises:
        TypeError: if `config` is not a `GecoConfig`.
    """
    if not isinstance(config, GecoConfig):
        raise TypeError(f"config must be a GecoConfig, got {type(config).__name__}: {config!r}.")
    recon = tf.convert_to_tensor(recon)
    dtype = recon.dtype
    kl = _as_dtype(kl, dtype)
    previous_ma = tf.stop_gradient(_as_dtype(constraint_ma, dtype))
    multiplier = tf.stop_gradient(_as_dtype(multiplier, dtype))
    first_step = tf.equal(tf.cast(step, tf.int64), 0)

    constraint = recon - config.kappa**2
    constraint_ma = tf.stop_gradient(
        tf.where(
            first_step,
            constraint,
            config.alpha * previous_ma + (1.0 - config.alpha) * constraint,
        )
    )
    if config.mode == "fixed_beta":
        loss = recon + config.beta * kl
        return GecoStep(loss, constraint, constraint_ma, multiplier)

    loss = kl + multiplier * (constraint + tf.stop_gradient(constraint_ma - constraint))
    low, high = config.clip
    new_multiplier = tf.clip_by_value(
        multiplier * tf.exp(config.nu * constraint_ma), tf.cast(low, dtype), tf.cast(high, dtype)
    )
    return GecoStep(loss, constraint, constraint_ma, new_multiplier)


def evaluation_loss(recon, kl, multiplier, config: GecoConfig) -> tf.Tensor:
    """The objective's value on held-out data, with the state as it is (no update).

        geco:        kl + lambda * (recon - kappa^2)     (the batch's own constraint, no average)
        fixed_beta:  recon + beta * kl

    Equal to `geco_update(...).loss` at step 0, where the moving average is the batch's C.
    """
    recon = tf.convert_to_tensor(recon)
    kl = _as_dtype(kl, recon.dtype)
    if config.mode == "fixed_beta":
        return recon + config.beta * kl
    return kl + _as_dtype(multiplier, recon.dtype) * (recon - config.kappa**2)


def diverged(multiplier, config: GecoConfig) -> tf.Tensor:
    """True when lambda is at (or beyond) a clip bound or not finite: GECO has run away.

    Meant for tuning: a trial whose multiplier hit a bound is a failed trial.

    Args:
        multiplier: lambda, a scalar (or any shape: the result is elementwise).
        config: the `GecoConfig` whose `clip` bounds apply.

    Returns:
        A boolean tensor shaped like `multiplier`.
    """
    multiplier = tf.convert_to_tensor(multiplier)
    if not multiplier.dtype.is_floating:
        multiplier = tf.cast(multiplier, tf.float64)
    low, high = config.clip
    at_bound = tf.logical_or(
        multiplier <= tf.cast(low, multiplier.dtype), multiplier >= tf.cast(high, multiplier.dtype)
    )
    return tf.logical_or(at_bound, tf.logical_not(tf.math.is_finite(multiplier)))
