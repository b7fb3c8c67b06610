"""The HGN Keras model: variants, save -> load equality, GECO in train_step, learning."""

import numpy as np
import pytest
import tensorflow as tf

from hgn_tf import config as C
from hgn_tf.model import HGN
from hgn_tf.train import build_model


def _frames(b=4, t=4, r=32, seed=0):
    """A moving bright square: simple, learnable, deterministic."""
    rng = np.random.default_rng(seed)
    x = np.full((b, t, r, r, 3), 0.3, np.float32)
    for i in range(b):
        r0, c0 = rng.integers(4, r - 12, size=2)
        for j in range(t):
            x[i, j, r0:r0 + 6, c0 + j:c0 + j + 6] = 1.0
    return tf.constant(x)


VARIANTS = {
    "leapfrog": {},
    "euler": dict(integrator="euler"),
    "rk4": dict(integrator="rk4"),
    "yoshida": dict(integrator="yoshida"),
    "deterministic": dict(deterministic=True),
    "no_f_psi": dict(use_f_psi=False),
    "direct": dict(dynamics="direct"),
    "inference": dict(input_mode="inference", input_frames=2),
    "non_separable": dict(separable_hamiltonian=False),
    "vector": dict(latent="vector", latent_channels=3),
    "vector_no_f_psi": dict(latent="vector", latent_channels=3, use_f_psi=False),
    "vector_direct": dict(latent="vector", latent_channels=3, dynamics="direct"),
    "predictive_mean": dict(predictive_draws=2),
}
LATENTS = {"spatial": {}, "vector": dict(latent="vector", latent_channels=3)}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_trains_one_step_and_reconstructs(variant):
    cfg = C.tiny().replace(model=VARIANTS[variant])
    model = build_model(cfg)
    x = _frames()
    logs = model.train_step(x)
    assert np.isfinite(float(logs["loss"]))
    out = model.rollout(x, 6)
    assert out["frames"].shape == (4, 6, 32, 32, 3)
    assert float(tf.reduce_min(out["frames"])) >= 0 and float(tf.reduce_max(out["frames"])) <= 1
    # Frames are a function of q alone (the decoder never sees p), and the first is the initial
    # state's: rollout frames = decode(rollout q), and rollout q starts at the encoded q0.
    np.testing.assert_allclose(out["frames"], model.decode(out["q"]), atol=1e-6)
    q0, _, _ = model.encode(model.conditioning_frames(x))
    np.testing.assert_allclose(out["q"][:, 0], q0, atol=1e-6)


def test_rollout_speed_and_direction_follow_dt():
    model = build_model(C.tiny())
    x = _frames()
    q0, p0, _ = model.encode(x)
    # Two steps of dt/2 land near one step of dt (the integrator is consistent), and a backward
    # step undoes a forward one to the integrator's accuracy.
    qa, pa = model.integrate(q0, p0, 2, 0.125)
    qb, pb = model.integrate(q0, p0, 3, 0.0625)
    np.testing.assert_allclose(qa[:, 1], qb[:, 2], atol=1e-3)
    qf, pf = model.integrate(q0, p0, 2, 0.125)
    qr, _ = model.integrate(qf[:, 1], pf[:, 1], 2, -0.125)
    np.testing.assert_allclose(qr[:, 1], q0, atol=1e-4)
    # A zero dt keeps the state.
    qz, _ = model.integrate(q0, p0, 3, 0.0)
    np.testing.assert_allclose(qz[:, 2], q0, atol=1e-7)


@pytest.mark.parametrize("latent", sorted(LATENTS))
def test_save_load_gives_identical_outputs(tmp_path, latent):
    cfg = C.tiny().replace(model=LATENTS[latent])
    model = build_model(cfg)
    x = _frames()
    model.train_step(x)  # moves weights and GECO state away from their initial values
    model.save_weights(str(tmp_path / "w.weights.h5"))
    other = build_model(cfg.replace(train=dict(seed=123)))
    other.load_weights(str(tmp_path / "w.weights.h5"))
    a, b = model.rollout(x, 5), other.rollout(x, 5)
    for k in ("frames", "q", "p", "energy"):
        np.testing.assert_allclose(a[k].numpy(), b[k].numpy(), rtol=1e-6, atol=1e-6)
    for name in ("geco_multiplier", "geco_constraint_ma", "geco_step"):
        assert float(getattr(model, name)) == float(getattr(other, name))


@pytest.mark.parametrize("latent", sorted(LATENTS))
def test_separable_hamiltonian_splits_into_kinetic_and_potential(latent):
    model = build_model(C.tiny().replace(model=LATENTS[latent]))
    assert model.state_shape == ((3,) if latent == "vector" else (4, 4, 2))
    q0, p0, _ = model.encode(_frames())
    h = model.hamiltonian
    # H(q, p) - H(q, p') does not depend on q when H = K(p) + V(q).
    p1 = p0 + 0.5
    np.testing.assert_allclose(h(q0, p0) - h(q0, p1), h(q0 + 1.0, p0) - h(q0 + 1.0, p1), atol=1e-5)
    # ... and so leapfrog on the learned H is exactly reversible (to float32 round-off).
    qs, ps = model.integrate(q0, p0, 4, 0.125)
    qb, pb = model.integrate(qs[:, -1], ps[:, -1], 4, -0.125)
    np.testing.assert_allclose(qb[:, -1], q0, atol=1e-5)
    np.testing.assert_allclose(pb[:, -1], p0, atol=1e-5)


def test_keras_config_round_trip():
    model = HGN(C.tiny().model, C.tiny().geco, seed=3)
    clone = HGN.from_config(model.get_config())
    assert clone.config == model.config and clone.geco_config == model.geco_config


def test_train_step_applies_the_geco_rule():
    cfg = C.tiny().replace(geco=dict(kappa=0.01, alpha=0.5, nu=1.0, initial_multiplier=2.0))
    model = build_model(cfg)
    x = _frames()
    for step in range(3):
        lam, ma = float(model.geco_multiplier), float(model.geco_constraint_ma)
        model.reset_metrics()  # so that logs["recon"] is this step's value, not a running mean
        logs = model.train_step(x)
        c = float(logs["recon"]) - 0.01 ** 2
        expected_ma = c if step == 0 else 0.5 * ma + 0.5 * c
        np.testing.assert_allclose(float(model.geco_constraint_ma), expected_ma, rtol=1e-5)
        np.testing.assert_allclose(float(model.geco_multiplier), lam * np.exp(expected_ma),
                                   rtol=1e-5)
        assert float(model.geco_step) == step + 1


def test_fixed_beta_keeps_the_multiplier():
    model = build_model(C.tiny().replace(geco=dict(mode="fixed_beta", beta=0.1)))
    for _ in range(3):
        model.train_step(_frames())
    assert float(model.geco_multiplier) == 1.0


def test_training_lowers_the_reconstruction_error():
    cfg = C.tiny().replace(geco=dict(mode="fixed_beta", beta=1e-3),
                           train=dict(learning_rate=3e-3))
    model = build_model(cfg)
    x = _frames()
    step = tf.function(model.train_step)
    first = float(step(x)["recon"])
    model.reset_metrics()
    for _ in range(40):
        model.reset_metrics()
        last = float(step(x)["recon"])
    assert last < 0.5 * first, (first, last)


def test_rollout_trace_does_not_grow_with_steps():
    model = build_model(C.tiny())
    x = _frames()
    # Traced with the step count as a Python constant, 5 and 500 steps give graphs of the same
    # size (a Python-unrolled loop would grow 100-fold) ...
    fn = tf.function(lambda x, n: model.rollout(x, n)["frames"])
    sizes = [len(fn.get_concrete_function(x, n).graph.get_operations()) for n in (5, 500)]
    assert sizes[0] == sizes[1], sizes
    # ... and with the step count as a tensor, one trace serves every length.
    fn_t = tf.function(lambda x, n: model.rollout(x, n)["frames"])
    assert fn_t(x, tf.constant(3)).shape[1] == 3
    assert fn_t(x, tf.constant(40)).shape[1] == 40
    assert fn_t.experimental_get_tracing_count() == 1


def test_mixed_bfloat16_keeps_the_dynamics_in_float32_and_matches_float32():
    """precision="mixed_bfloat16": the encoder's and decoder's hidden convs compute in bfloat16,
    everything the physics needs in float32; with the same weights the outputs agree with the
    float32 model to bfloat16's precision, and training learns."""
    cfg = C.tiny()
    mixed_cfg = cfg.replace(model=dict(precision="mixed_bfloat16"))
    full, mixed = build_model(cfg), build_model(mixed_cfg)
    mixed.set_weights(full.get_weights())
    assert mixed.decoder.blocks[0].conv1.compute_dtype == "bfloat16"
    assert mixed.encoder.convs[0].compute_dtype == "bfloat16"
    assert mixed.decoder.out.compute_dtype == "float32"
    assert mixed.encoder.out.compute_dtype == "float32"
    assert mixed.hamiltonian_net.compute_dtype == "float32"
    assert all(v.dtype == "float32" for v in mixed.weights if v.dtype.startswith("float"))
    x = _frames()
    a, b = full.rollout(x, 5), mixed.rollout(x, 5)
    for k in ("frames", "q", "p", "energy"):
        assert b[k].dtype == tf.float32, k
        scale = float(tf.reduce_max(tf.abs(a[k])))
        err = float(tf.reduce_max(tf.abs(a[k] - b[k])))
        assert 0 < err < 0.02 * scale, (k, err, scale)  # bfloat16 keeps 8 bits of mantissa

    model = build_model(mixed_cfg.replace(geco=dict(mode="fixed_beta", beta=1e-3),
                                          train=dict(learning_rate=3e-3)))
    step = tf.function(model.train_step)
    first = float(step(x)["recon"])
    for _ in range(40):
        model.reset_metrics()
        last = float(step(x)["recon"])
    assert last < 0.5 * first, (first, last)


def test_xla_steps_in_training_give_the_same_objective_and_gradients():
    frames = tf.random.stateless_uniform([2, 4, 32, 32, 3], seed=[1, 2])
    results = []
    for xla in (False, True):
        model = build_model(C.tiny().replace(model=dict(xla_steps=xla)))
        with tf.GradientTape() as tape:
            recon, kl = model.objective_terms(frames, training=False)
            loss = recon + 1e-3 * kl
        grads = tape.gradient(loss, model.trainable_variables)
        results.append((float(recon), float(kl), [g.numpy() for g in grads]))
    (r0, k0, g0), (r1, k1, g1) = results
    np.testing.assert_allclose([r1, k1], [r0, k0], rtol=1e-5)
    assert len(g0) == len(g1) and all(g is not None for g in g0)
    for a, b in zip(g0, g1):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-4 * max(np.abs(a).max(), 1e-8))


def test_predictive_draws_fit_the_mean_of_the_draws_decoded_rollouts():
    from hgn_tf.errors import ConfigError

    cfg = C.tiny().replace(model=dict(predictive_draws=3, input_mode="inference",
                                      input_frames=2))
    model = build_model(cfg)
    x, seed = _frames(), tf.constant([3, 4])
    draws, kl = model.draw_frames(x, 4, 3, seed=seed)
    assert draws.shape == (3, 4, 4, 32, 32, 3)
    # Draw k of sequence b is the rollout of the k-th posterior sample of sequence b (the
    # draws are not mixed across sequences by the reshapes).
    post = model.posterior(model.conditioning_frames(x))
    z = post.sample(3, seed=seed)
    for k in range(3):
        q0, p0 = model.latent_to_state(z[k])
        qs, _ = model.integrate(q0, p0, 4, cfg.model.dt)
        np.testing.assert_allclose(draws[k], model.decode(qs), atol=1e-6)
    assert float(tf.reduce_max(tf.abs(draws[0] - draws[1]))) > 1e-3  # the posterior has spread
    # The objective fits their mean, so it is below the mean of the draws' own errors (by
    # their variance), and the KL is the posterior's, as with one draw.
    recon, kl_mean = model.objective_terms(x, training=True, seed=seed)
    mean = tf.reduce_mean(draws, axis=0)
    np.testing.assert_allclose(float(recon), float(tf.reduce_mean(tf.square(mean - x))),
                               rtol=1e-5)
    per_draw = float(tf.reduce_mean(tf.square(draws - x[None])))
    spread = float(tf.reduce_mean(tf.math.reduce_variance(draws, axis=0)))
    np.testing.assert_allclose(per_draw - float(recon), spread, rtol=1e-4)
    np.testing.assert_allclose(float(kl_mean), float(tf.reduce_mean(kl)), rtol=1e-6)
    _, _, kl_one = model.encode(model.conditioning_frames(x))
    np.testing.assert_allclose(kl, kl_one, rtol=1e-6)
    # Validation scores the same draws every time: those of PREDICTIVE_SEED, which serving
    # averages too.
    from hgn_tf.model import PREDICTIVE_SEED

    val = float(model.objective_terms(x, training=False)[0])
    assert val == float(model.objective_terms(x, training=False)[0])
    fixed = model.predictive_frames(x, 4, 3, seed=tf.constant(PREDICTIVE_SEED))[0]
    np.testing.assert_allclose(val, float(tf.reduce_mean(tf.square(fixed - x))), rtol=1e-5)
    # rollout(draws=K), what evaluation and serving call: the same draws' mean as frames, the
    # posterior mean's states, energy and KL, from one encode.
    both = model.rollout(x, 4, seed=seed, draws=3)
    one = model.rollout(x, 4)
    np.testing.assert_allclose(both["frames"], mean, atol=1e-6)
    for key in ("q", "p", "energy", "kl"):
        np.testing.assert_allclose(both[key], one[key], atol=1e-6, err_msg=key)
    with pytest.raises(ConfigError, match="sample"):
        model.rollout(x, 4, sample=True, draws=3)


def test_predictive_draws_need_a_posterior():
    from hgn_tf.errors import ConfigError

    with pytest.raises(ConfigError, match="predictive_draws") as e:
        C.tiny().replace(model=dict(deterministic=True, predictive_draws=2))
    assert e.value.field.endswith("predictive_draws")
    with pytest.raises(ConfigError):
        C.tiny().replace(model=dict(predictive_draws=0))
    det = build_model(C.tiny().replace(model=dict(deterministic=True)))
    with pytest.raises(ConfigError, match="deterministic"):
        det.draw_frames(_frames(), 4, 2)
    with pytest.raises(ConfigError, match="draws"):
        build_model(C.tiny()).draw_frames(_frames(), 4, 0)
