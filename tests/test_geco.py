"""GECO arithmetic against a NumPy reference, and the behaviour the equations promise."""

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from hgn_tf import geco
from hgn_tf.errors import ConfigError
from hgn_tf.geco import GecoConfig, evaluation_loss, geco_update


def run(config, recons, kls=None, dtype=tf.float64):
    """Feeds a sequence of (recon, kl) through geco_update, carrying the state like a model."""
    kls = np.zeros(len(recons)) if kls is None else kls
    constraint_ma = tf.constant(0.0, dtype)
    multiplier = tf.constant(config.initial_multiplier, dtype)
    steps = []
    for t, (recon, kl) in enumerate(zip(recons, kls)):
        out = geco_update(
            tf.constant(recon, dtype), tf.constant(kl, dtype), constraint_ma, multiplier, t, config
        )
        steps.append(out)
        constraint_ma, multiplier = out.constraint_ma, out.multiplier
    return steps


def numpy_reference(config, recons, kls):
    """The recurrence of the module docstring, written independently in NumPy."""
    c_ma, lam = 0.0, config.initial_multiplier
    rows = []
    for t, (recon, kl) in enumerate(zip(recons, kls)):
        c = recon - config.kappa**2
        c_ma = c if t == 0 else config.alpha * c_ma + (1 - config.alpha) * c
        loss = kl + lam * c_ma
        lam = float(np.clip(lam * np.exp(config.nu * c_ma), *config.clip))
        rows.append((loss, c, c_ma, lam))
    return np.array(rows)


def test_defaults_are_the_reproductions():
    config = GecoConfig()
    assert (config.mode, config.kappa, config.alpha, config.initial_multiplier, config.nu) == (
        "geco",
        0.033,
        0.99,
        1.0,
        0.1,
    )
    assert config.clip == (1e-10, 1e10)


def test_matches_numpy_recurrence_over_random_steps():
    config = GecoConfig(alpha=0.9, nu=2.0, kappa=0.1)
    rng = np.random.default_rng(0)
    recons = rng.uniform(0.0, 0.03, 20)  # Around kappa^2 = 0.01: violated and met in turn.
    kls = rng.uniform(0.0, 5.0, 20)
    steps = run(config, recons, kls)
    actual = np.array([[s.loss, s.constraint, s.constraint_ma, s.multiplier] for s in steps])
    np.testing.assert_allclose(actual, numpy_reference(config, recons, kls), rtol=1e-12, atol=1e-15)


def test_first_step_initialises_moving_average_to_constraint():
    config = GecoConfig(alpha=0.99)
    out = geco_update(0.5, 0.0, constraint_ma=123.0, multiplier=1.0, step=0, config=config)
    np.testing.assert_allclose(out.constraint_ma, 0.5 - config.kappa**2)
    later = geco_update(
        0.5, 0.0, constraint_ma=123.0, multiplier=1.0, step=tf.constant(7, tf.int64), config=config
    )
    np.testing.assert_allclose(
        later.constraint_ma, 0.99 * 123.0 + 0.01 * (0.5 - config.kappa**2), rtol=1e-6
    )


def test_multiplier_rises_while_violated_and_falls_when_met():
    config = GecoConfig(alpha=0.5, nu=1.0)
    kappa2 = config.kappa**2
    violated = run(config, [kappa2 + 0.5] * 10)
    rising = [float(s.multiplier) for s in violated]
    assert all(b > a for a, b in zip([config.initial_multiplier] + rising, rising))

    met = run(config, [kappa2 * 0.1] * 10)
    falling = [float(s.multiplier) for s in met]
    assert all(b < a for a, b in zip([config.initial_multiplier] + falling, falling))


def test_loss_value_uses_moving_average_and_gradient_uses_current_constraint():
    config = GecoConfig(alpha=0.9)
    recon = tf.Variable(0.2, dtype=tf.float64)
    kl = tf.Variable(3.0, dtype=tf.float64)
    lam, c_ma = 2.5, 0.7
    with tf.GradientTape() as tape:
        out = geco_update(recon, kl, c_ma, lam, step=5, config=config)
    d_recon, d_kl = tape.gradient(out.loss, [recon, kl])
    np.testing.assert_allclose(d_recon, lam, rtol=1e-15)  # Multiplier in front of C_t only.
    np.testing.assert_allclose(d_kl, 1.0, rtol=1e-15)
    expected_ma = 0.9 * c_ma + 0.1 * (0.2 - config.kappa**2)
    np.testing.assert_allclose(out.constraint_ma, expected_ma, rtol=1e-14)
    np.testing.assert_allclose(out.loss, 3.0 + lam * expected_ma, rtol=1e-14)
    # The loss used the current multiplier; the updated one is for the next step.
    np.testing.assert_allclose(out.multiplier, lam * math.exp(config.nu * expected_ma), rtol=1e-14)


def test_state_inputs_get_no_gradient():
    c_ma = tf.Variable(0.3, dtype=tf.float64)
    lam = tf.Variable(2.0, dtype=tf.float64)
    with tf.GradientTape() as tape:
        out = geco_update(tf.constant(0.1, tf.float64), 1.0, c_ma, lam, 3, GecoConfig())
        total = out.loss + out.multiplier + out.constraint_ma
    assert tape.gradient(total, [c_ma, lam]) == [None, None]


def test_fixed_beta_keeps_multiplier_and_loss_is_recon_plus_beta_kl():
    config = GecoConfig(mode="fixed_beta", beta=0.05, initial_multiplier=3.0)
    rng = np.random.default_rng(1)
    recons, kls = rng.uniform(0, 1, 15), rng.uniform(0, 10, 15)
    steps = run(config, recons, kls)
    for s, recon, kl in zip(steps, recons, kls):
        np.testing.assert_allclose(s.loss, recon + 0.05 * kl, rtol=1e-14)
        assert float(s.multiplier) == 3.0
    recon = tf.Variable(0.4, dtype=tf.float64)
    with tf.GradientTape() as tape:
        out = geco_update(recon, 2.0, 0.0, 3.0, 4, config)
    np.testing.assert_allclose(tape.gradient(out.loss, recon), 1.0)


def test_multiplier_is_clipped_and_diverged_flags_the_bounds():
    config = GecoConfig(nu=1e4, clip=(1e-3, 10.0))
    up = run(config, [1.0] * 5)
    assert float(up[-1].multiplier) == 10.0
    assert bool(geco.diverged(up[-1].multiplier, config))
    down = run(config, [0.0] * 5)  # C = -kappa^2: lambda shrinks by exp(-10.9) a step.
    assert float(down[-1].multiplier) == pytest.approx(1e-3)
    assert bool(geco.diverged(down[-1].multiplier, config))
    # An overflowing exp still lands on the bound, in float32 too.
    huge = run(config, [1e30], dtype=tf.float32)[-1].multiplier
    assert huge.dtype == tf.float32 and float(huge) == 10.0

    assert not bool(geco.diverged(1.0, config))
    assert bool(geco.diverged(float("nan"), config))
    assert bool(geco.diverged(float("inf"), config))
    np.testing.assert_array_equal(geco.diverged([1e-3, 0.5, 10.0], config), [True, False, True])


def test_works_in_float32_inside_tf_function():
    config = GecoConfig()

    @tf.function
    def step(recon, kl, c_ma, lam, t):
        return geco_update(recon, kl, c_ma, lam, t, config)

    out = step(
        tf.constant(0.01), tf.constant(2.0), tf.constant(0.0), tf.constant(1.0), tf.constant(0)
    )
    assert out.loss.dtype == out.multiplier.dtype == tf.float32
    np.testing.assert_allclose(out.constraint_ma, 0.01 - 0.033**2, rtol=1e-6)


@pytest.mark.parametrize(
    "field,value",
    [
        ("mode", "beta_vae"),
        ("kappa", 0.0),
        ("kappa", -0.1),
        ("alpha", 1.0),
        ("alpha", -0.1),
        ("nu", 0.0),
        ("nu", float("inf")),
        ("beta", -1.0),
        ("clip", (1.0, 0.5)),
        ("clip", (0.0, 1.0)),
        ("clip", (1.0,)),
        ("initial_multiplier", 1e11),
        ("initial_multiplier", 1e-10),  # On the bound: it would count as diverged at once.
        ("kappa", "0.033"),
        ("alpha", True),
    ],
)
def test_bad_config_raises_naming_field_and_value(field, value):
    with pytest.raises(ConfigError, match=rf"GecoConfig\.{field}") as info:
        GecoConfig(**{field: value})
    assert repr(value) in str(info.value)


def test_config_is_frozen_and_rejects_unknown_fields():
    config = GecoConfig(clip=[1e-4, 1e4])
    assert config.clip == (1e-4, 1e4)  # Normalised to a tuple: the config stays hashable.
    hash(config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.kappa = 0.1
    with pytest.raises(TypeError, match="tolerance"):
        GecoConfig(tolerance=0.033)
    with pytest.raises(TypeError, match="GecoConfig"):
        geco_update(0.1, 1.0, 0.0, 1.0, 0, config={"kappa": 0.033})


@pytest.mark.parametrize("mode", ["geco", "fixed_beta"])
def test_evaluation_loss_is_the_objective_without_a_state_update(mode):
    config = GecoConfig(mode=mode, kappa=0.05, beta=0.3)
    recon, kl, multiplier = tf.constant(0.01), tf.constant(2.0), tf.constant(7.0)
    value = float(evaluation_loss(recon, kl, multiplier, config))
    # At step 0 the moving average is the batch's own constraint, so the values coincide.
    step0 = geco_update(recon, kl, tf.constant(123.0), multiplier, 0, config)
    np.testing.assert_allclose(value, float(step0.loss), rtol=1e-6)
    expected = 0.01 + 0.3 * 2.0 if mode == "fixed_beta" else 2.0 + 7.0 * (0.01 - 0.05**2)
    np.testing.assert_allclose(value, expected, rtol=1e-6)
