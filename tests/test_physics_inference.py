"""The prediction floor: the prior's density, the maximum-likelihood fit of the initial state, and
the posterior-expected frames (`hgn_tf.physics.inference`)."""

import math

import numpy as np
import pytest

from hgn_tf import physics
from hgn_tf.errors import DataError
from hgn_tf.physics import inference
from hgn_tf.physics.base import phase_sphere_log_density
from hgn_tf.physics.render import DEFAULT_BACKGROUND

DT = 0.125


@pytest.mark.parametrize("dim", [1, 2])
def test_phase_sphere_density_integrates_to_one_and_matches_the_sampler(dim):
    lo, hi = 0.5, 1.5
    # Closed form: integral over the shell of 1 / ((hi - lo) |S| r^(n-1)) dV = 1. Checked by Monte
    # Carlo over the cube [-hi, hi]^n.
    n = 2 * dim
    rng = np.random.default_rng(0)
    x = rng.uniform(-hi, hi, size=(400_000, n))
    density = np.exp(phase_sphere_log_density(x[:, :dim], x[:, dim:], (lo, hi)))
    integral = density.mean() * (2 * hi) ** n
    assert integral == pytest.approx(1.0, rel=0.02)
    # Its second moment is the sampler's: E|x|^2 = (hi^3 - lo^3) / (3 (hi - lo)).
    q, p = physics.base.sample_phase_sphere(rng, 100_000, dim, (lo, hi))
    assert np.all(np.isfinite(phase_sphere_log_density(q, p, (lo, hi))))
    expected = (hi ** 3 - lo ** 3) / (3 * (hi - lo))
    assert (density * (x ** 2).sum(1)).mean() * (2 * hi) ** n == pytest.approx(expected, rel=0.03)
    assert ((q ** 2).sum(1) + (p ** 2).sum(1)).mean() == pytest.approx(expected, rel=0.01)
    # Outside the shell: probability 0.
    assert np.all(phase_sphere_log_density(np.zeros((1, dim)), np.zeros((1, dim)), (lo, hi))
                  == -np.inf)
    # At radius r the density is 1 / ((hi - lo) |S^(n-1)| r^(n-1)).
    r = 1.2
    point = np.zeros((1, n))
    point[0, 0] = r
    area = 2 * math.pi ** (n / 2) / math.gamma(n / 2)
    assert phase_sphere_log_density(point[:, :dim], point[:, dim:], (lo, hi))[0] == pytest.approx(
        -math.log((hi - lo) * area * r ** (n - 1)))
    # The samplers that use it say so; the n-body ones have no density.
    assert inference.has_prior(physics.get("pendulum"))
    assert inference.has_prior(physics.get("double_pendulum"))
    assert not inference.has_prior(physics.get("two_body"))


@pytest.mark.parametrize("name", ["mass_spring", "pendulum"])
def test_the_fit_recovers_the_true_state_from_noise_free_positions(name):
    system = physics.get(name)
    q0, p0 = system.sample_initial(np.random.default_rng(3), 6)
    times = DT * np.arange(5)
    q, _ = system.simulate(q0, p0, times)
    fit = inference.fit_initial_states(system, q, times)
    np.testing.assert_allclose(fit["x"], np.concatenate([q0, p0], axis=1), atol=1e-6)
    assert np.all(fit["chi2"] < 1e-8)
    assert fit["jacobian"].shape == (6, 5 * system.dim, 2 * system.dim)


def test_the_fit_residual_has_the_chi2_mean_of_its_degrees_of_freedom():
    system = physics.get("pendulum")
    rng = np.random.default_rng(4)
    q0, p0 = system.sample_initial(rng, 400)
    times = DT * np.arange(5)
    q, _ = system.simulate(q0, p0, times)
    noisy = q + system.noise_std * rng.standard_normal(q.shape)
    fit = inference.fit_initial_states(system, noisy, times)
    # 5 observations, 2 parameters: E chi2 = 3 (linearised), std of the mean sqrt(6 / 400) = 0.12.
    assert fit["chi2"].mean() == pytest.approx(3.0, abs=0.4)


def test_the_posterior_mean_is_the_true_rollout_when_the_noise_vanishes():
    system = physics.get("pendulum", noise_std=1e-4)
    q0, p0 = system.sample_initial(np.random.default_rng(5), 3)
    times = DT * np.arange(12)
    q, _ = system.simulate(q0, p0, times)
    noisy = q + system.noise_std * np.random.default_rng(6).standard_normal(q.shape)
    out = inference.posterior_frames(system, noisy, times, frames_read=4, n_samples=16, seed=0,
                                     resolution=32)
    truth = physics.render_states(system, q, 32) / np.float32(255)
    assert out["frames"].shape == truth.shape
    # The frames read are the observations' own frames, exactly.
    np.testing.assert_array_equal(out["frames"][:, :4],
                                  physics.render_states(system, noisy[:, :4], 32) / np.float32(255))
    assert np.abs(out["frames"] - truth).mean() < 2e-3  # antialiased edges move by ~1e-3 px
    np.testing.assert_allclose(out["ml_q"], q, atol=5e-3)  # 1e-4 noise, extrapolated 3x
    assert np.all(out["ess"] > 1)


def test_the_posterior_mean_spreads_with_the_noise_and_is_seeded():
    system = physics.get("pendulum")
    q0, p0 = system.sample_initial(np.random.default_rng(7), 4)
    times = DT * np.arange(20)
    q, _ = system.simulate(q0, p0, times)
    noisy = q + system.noise_std * np.random.default_rng(8).standard_normal(q.shape)
    kwargs = dict(frames_read=5, n_samples=32, resolution=32)
    a = inference.posterior_frames(system, noisy, times, seed=1, **kwargs)
    b = inference.posterior_frames(system, noisy, times, seed=1, **kwargs)
    np.testing.assert_array_equal(a["frames"], b["frames"])
    # Uncertain about the state, the mean frame smears the bob: more pixels lit, fainter, and the
    # lit area grows along the rollout as the posterior's phases spread.
    background = np.asarray(DEFAULT_BACKGROUND, np.float32)
    lit = (np.abs(a["frames"] - background).max(axis=-1) > 0.01).sum(axis=(2, 3))  # [N, T]
    sharp = (np.abs(physics.render_states(system, a["ml_q"], 32) / 255.0 - background)
             .max(axis=-1) > 0.01).sum(axis=(2, 3))
    assert lit[:, -1].mean() > 1.5 * sharp[:, -1].mean()
    assert lit[:, -1].mean() > lit[:, 0].mean()


def test_bad_arguments_name_the_argument():
    pendulum = physics.get("pendulum")
    times = DT * np.arange(6)
    q = np.zeros((2, 6, 1))
    cases = ((dict(frames_read=1), "frames_read"), (dict(frames_read=6), "frames_read"),
             (dict(frames_read=3, n_samples=0), "n_samples"))
    for kwargs, field in cases:
        args = dict(n_samples=4, seed=0) | kwargs
        with pytest.raises(DataError) as e:
            inference.posterior_frames(pendulum, q, times, **args)
        assert e.value.field == field
    with pytest.raises(DataError) as e:
        inference.posterior_frames(physics.get("two_body"), np.zeros((2, 6, 4)), times,
                                   frames_read=3, n_samples=4, seed=0)
    assert e.value.field == "system" and "two_body" in str(e.value)
    with pytest.raises(DataError) as e:
        inference.fit_initial_states(pendulum, np.zeros((2, 6, 2)), times)
    assert e.value.field == "q_obs"
    with pytest.raises(DataError) as e:
        inference.fit_initial_states(pendulum, q, times[::-1])
    assert e.value.field == "times"
