"""Learned priors over the HGN's initial state (`hgn_tf.prior`): EM recovers a known mixture,
save -> load and export keep the log-densities and the samples, HGN.sample draws from them."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from hgn_tf import config as C
from hgn_tf.errors import ConfigError
from hgn_tf.prior import (
    FlowPrior,
    GaussianMixturePrior,
    PriorConfig,
    aggregate_posterior,
    fit_prior,
    load_prior,
    save_prior,
)
from hgn_tf.train import build_model

tfd = tfp.distributions


def _known_mixture():
    """Two well-separated 3-D Gaussians, weights 0.3 / 0.7, full covariances."""
    weights = np.array([0.3, 0.7])
    means = np.array([[-3.0, 0.0, 1.0], [2.0, 1.0, -1.0]])
    a = np.array([[1.0, 0.0, 0.0], [0.5, 0.8, 0.0], [-0.3, 0.2, 0.6]])
    b = np.array([[0.6, 0.0, 0.0], [-0.2, 1.2, 0.0], [0.1, 0.4, 0.9]])
    covs = np.stack([a @ a.T, b @ b.T])
    dist = tfd.MixtureSameFamily(tfd.Categorical(probs=weights),
                                 tfd.MultivariateNormalTriL(means, np.linalg.cholesky(covs)))
    return weights, means, covs, dist


def test_em_recovers_a_known_gaussian_mixture():
    weights, means, covs, dist = _known_mixture()
    x = dist.sample(20_000, seed=(1, 2)).numpy()
    prior = fit_prior(x, PriorConfig(kind="gmm", components=2, reg_covar=1e-6))
    order = np.argsort(prior.means.numpy()[:, 0])  # component 0 is the one at x = -3
    got_w = np.exp(prior.log_weights.numpy())[order]
    got_mu = prior.means.numpy()[order]
    tril = prior.scale_trils.numpy()[order]
    got_cov = tril @ np.transpose(tril, (0, 2, 1))
    # Sampling error with 6,000 / 14,000 points per component: ~1e-2.
    np.testing.assert_allclose(got_w, weights, atol=0.015)
    np.testing.assert_allclose(got_mu, means, atol=0.05)
    np.testing.assert_allclose(got_cov, covs, atol=0.06)
    # ... so it assigns held-out points the true density: the mean log-likelihoods agree.
    held = dist.sample(5_000, seed=(3, 4))
    assert abs(np.mean(prior.log_prob(held).numpy() - dist.log_prob(held).numpy())) < 0.01


def test_a_diagonal_mixture_has_diagonal_covariances_and_the_right_variances():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal([0, 0], [1.0, 0.2], (4000, 2)),
                        rng.normal([6, 6], [0.3, 2.0], (4000, 2))])
    prior = fit_prior(x, PriorConfig(kind="gmm", components=2, covariance="diag",
                                     reg_covar=1e-6))
    order = np.argsort(prior.means.numpy()[:, 0])
    tril = prior.scale_trils.numpy()[order]
    assert np.all(tril[:, 1, 0] == 0)
    np.testing.assert_allclose(np.diagonal(tril, axis1=1, axis2=2),
                               [[1.0, 0.2], [0.3, 2.0]], rtol=0.05)


def test_a_pca_mixture_fits_the_subspace_and_gives_the_rest_the_discarded_variance():
    # Two Gaussians inside a 2-D plane of 8-D space, plus isotropic noise of std 0.1 off it.
    rng = np.random.default_rng(2)
    basis = np.linalg.qr(rng.normal(size=(8, 2)))[0]  # [8, 2], orthonormal columns
    y = np.concatenate([rng.normal([-3, 0], [0.5, 1.0], (3000, 2)),
                        rng.normal([3, 1], [1.0, 0.3], (7000, 2))])
    noise = rng.normal(size=(10_000, 8)) * 0.1
    noise -= noise @ basis @ basis.T  # only off the plane
    x = y @ basis.T + noise
    std = x.std(axis=0)
    prior = fit_prior(x, PriorConfig(kind="gmm", components=2, pca_dim=2, reg_covar=1e-6))
    w = np.sort(np.exp(prior.log_weights.numpy()))
    np.testing.assert_allclose(w, [0.3, 0.7], atol=0.02)
    tril = prior.scale_trils.numpy()
    cov = tril @ np.transpose(tril, (0, 2, 1)) / std[:, None] / std[None, :]  # standardised
    # Off the fitted plane every component has the same isotropic variance (the mean of the
    # discarded eigenvalues), and samples stay as close to the plane as the data.
    u_plane = np.linalg.svd((x - x.mean(0)) / std, full_matrices=False)[2][:2].T
    off = np.eye(8) - u_plane @ u_plane.T
    for c in cov:
        eig = np.linalg.eigvalsh(off @ c @ off)[2:]  # the 6 off-plane eigenvalues
        np.testing.assert_allclose(eig, eig.mean(), rtol=1e-5)  # float32 parameters
    samples = prior.sample(10_000, seed=(5, 6)).numpy()
    dist_data = np.linalg.norm(((x - x.mean(0)) / std) @ off, axis=1).mean()
    dist_samples = np.linalg.norm(((samples - x.mean(0)) / std) @ off, axis=1).mean()
    assert abs(dist_samples / dist_data - 1) < 0.05


@pytest.mark.parametrize("changes", [dict(pca_dim=2, covariance="diag"),
                                     dict(pca_dim=2, kind="flow"), dict(pca_dim=-1)])
def test_bad_pca_settings_name_pca_dim(changes):
    with pytest.raises(ConfigError, match="pca_dim"):
        PriorConfig(**changes)


def test_pca_dim_at_or_above_the_dimension_is_plain_em_and_none_resolves_to_32():
    x = np.random.default_rng(0).normal(size=(300, 3)) * [1.0, 2.0, 0.5]
    plain = fit_prior(x, PriorConfig(components=2, pca_dim=0))
    for r in (3, 8):
        wide = fit_prior(x, PriorConfig(components=2, pca_dim=r))
        np.testing.assert_array_equal(wide.means.numpy(), plain.means.numpy())
        np.testing.assert_array_equal(wide.scale_trils.numpy(), plain.scale_trils.numpy())
    assert PriorConfig().resolved_pca_dim == 32
    assert PriorConfig(covariance="diag").resolved_pca_dim == 0
    assert PriorConfig(kind="flow").resolved_pca_dim == 0


def _flow_config():
    return PriorConfig(kind="flow", coupling_layers=2, hidden=(16,), steps=20, batch_size=32)


@pytest.mark.parametrize("kind", ["gmm", "flow"])
def test_a_prior_round_trips_through_save_and_load(kind, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 6)) * [1, 2, 3, 0.5, 0.1, 1] + 4
    config = PriorConfig(kind="gmm", components=3) if kind == "gmm" else _flow_config()
    prior = fit_prior(x, config)
    assert isinstance(prior, GaussianMixturePrior if kind == "gmm" else FlowPrior)
    save_prior(prior, tmp_path, {"note": "test"})
    loaded = load_prior(tmp_path)
    assert type(loaded) is type(prior) and loaded.get_config() == prior.get_config()
    np.testing.assert_array_equal(loaded.log_prob(x[:20]), prior.log_prob(x[:20]))
    np.testing.assert_array_equal(loaded.sample(5, seed=[3, 1]), prior.sample(5, seed=[3, 1]))
    assert np.abs(prior.sample(5, seed=[3, 1]) - prior.sample(5, seed=[3, 2])).max() > 1e-3
    assert json.loads((tmp_path / "prior.json").read_text())["info"] == {"note": "test"}
    assert load_prior(tmp_path / "elsewhere") is None


def test_the_flow_fits_its_data_better_than_its_initial_state():
    rng = np.random.default_rng(2)
    # A curved 2-D density (a parabola), standardised inside the prior.
    t = rng.normal(size=2000)
    x = np.stack([t, t ** 2 + 0.1 * rng.normal(size=2000)], axis=1)
    config = PriorConfig(kind="flow", coupling_layers=4, hidden=(32, 32), steps=300,
                         batch_size=256, learning_rate=3e-3)
    untrained = fit_prior(x, PriorConfig(kind="flow", coupling_layers=4, hidden=(32, 32),
                                         steps=1))
    trained = fit_prior(x, config)
    before = float(tf.reduce_mean(untrained.log_prob(x)))
    after = float(tf.reduce_mean(trained.log_prob(x)))
    assert after > before + 0.5, (before, after)


@pytest.fixture(scope="module")
def model_and_prior():
    """A tiny HGN (untrained) and a mixture fitted to its aggregate posterior."""
    model = build_model(C.tiny())
    rng = np.random.default_rng(0)
    frames = rng.uniform(size=(24, 4, 32, 32, 3)).astype(np.float32)
    states = aggregate_posterior(model, [frames[:12], frames[12:]], seed=5)
    assert states.shape == (24, model.state_dim) == (24, 2 * 4 * 4 * 2)
    return model, fit_prior(states, PriorConfig(kind="gmm", components=2))


@pytest.mark.parametrize("latent", [{}, dict(latent="vector", latent_channels=3)])
def test_flatten_and_unflatten_state_invert_each_other(latent):
    model = build_model(C.tiny().replace(model=latent))
    q = tf.random.stateless_normal([2, *model.state_shape], seed=[0, 1])
    p = tf.random.stateless_normal([2, *model.state_shape], seed=[0, 2])
    s = model.flatten_state(q, p)
    assert s.shape == (2, model.state_dim)
    q2, p2 = model.unflatten_state(s)
    np.testing.assert_array_equal(q2, q)
    np.testing.assert_array_equal(p2, p)


def test_hgn_samples_start_from_the_learned_prior(model_and_prior):
    model, prior = model_and_prior
    seed = tf.constant([4, 0])
    out = model.sample(3, 5, seed=seed, prior=prior)
    q0, p0 = model.unflatten_state(prior.sample(3, seed=seed))
    np.testing.assert_allclose(out["q"][:, 0], q0, atol=1e-6)
    np.testing.assert_allclose(out["p"][:, 0], p0, atol=1e-6)
    standard = model.sample(3, 5, seed=seed)
    assert np.abs(standard["q"][:, 0] - out["q"][:, 0]).max() > 1e-3
    other = fit_prior(np.random.default_rng(0).normal(size=(10, 4)),
                      PriorConfig(kind="gmm", components=1))
    with pytest.raises(ConfigError, match="`prior` must be a density over this model's"):
        model.sample(1, 2, seed=seed, prior=other)


def test_the_exported_sample_signature_uses_the_learned_prior(model_and_prior, tmp_path):
    from hgn_tf.export.saved_model import EXPORT_INFO_FILE, export_saved_model

    model, prior = model_and_prior
    path = export_saved_model(model, tmp_path / "hgn", max_steps=10, max_batch=4, prior=prior)
    info = json.loads((path / "assets" / EXPORT_INFO_FILE).read_text())
    assert info["sample_prior"] == "learned" and info["prior_config"]["components"] == 2
    sample = tf.saved_model.load(str(path)).signatures["sample"]
    got = sample(n=tf.constant(3), n_steps=tf.constant(5), dt=tf.constant(0.125),
                 seed=tf.constant(7))
    want = model.sample(3, 5, dt=0.125, seed=tf.constant([7, 0]), prior=prior)
    np.testing.assert_allclose(got["frames"], want["frames"], atol=1e-5)
    np.testing.assert_allclose(got["energy"], want["energy"], atol=1e-5)
    standard = model.sample(3, 5, dt=0.125, seed=tf.constant([7, 0]))
    assert np.abs(got["frames"] - standard["frames"]).max() > 1e-4
