"""The prediction floor: the prior's density, the maximum-likelihood fit of the initial state, and
the posterior-expected frames (`hgn_tf.physics.inference`)."""

import dataclasses
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
    # Every registered system says how it draws its initial states.
    assert all(inference.has_prior(physics.get(name)) for name in physics.SYSTEM_NAMES)
    assert not inference.has_prior(_NoPrior())


@dataclasses.dataclass(frozen=True, kw_only=True)
class _NoPrior(physics.get("pendulum").__class__):
    """A system that does not say how it draws its initial states."""

    def initial_parametrisation(self):
        return None


@pytest.mark.parametrize("name", ["two_body", "three_body"])
def test_nbody_parametrisation_is_the_sampler(name):
    system = physics.get(name)
    param = system.initial_parametrisation()
    n, b = 50, system.n_bodies
    rng = np.random.default_rng(9)
    q, p = system.sample_initial(np.random.default_rng(9), n)
    # The same draws, in the sampler's order, through the parametrisation.
    u = np.concatenate([rng.uniform(*system.radius_range, size=n)[:, None],
                        rng.uniform(0, 2 * np.pi, size=n)[:, None]], axis=1)
    u = np.concatenate([u, rng.standard_normal((n, b, 2)).reshape(n, 2 * b)], axis=1)
    q2, p2 = param.to_state(u)
    np.testing.assert_array_equal(q, q2)
    np.testing.assert_array_equal(p, p2)
    assert param.size == 2 + 2 * b and param.standard_normal == tuple(range(2, 2 + 2 * b))
    assert np.all(np.isfinite(param.log_prior(u)))
    outside = u.copy()
    outside[:, 0] = system.radius_range[1] + 0.1
    assert np.all(param.log_prior(outside) == -np.inf)
    # The guess from a state recovers r and theta (mod 2 pi) exactly.
    guess = param.guess(q, p)
    np.testing.assert_allclose(guess[:, 0], u[:, 0], rtol=1e-12)
    np.testing.assert_allclose(np.angle(np.exp(1j * (guess[:, 1] - u[:, 1]))), 0, atol=1e-12)


def test_nbody_fit_recovers_the_state_from_noise_free_positions():
    # With the dataset's noise (0.05) the jitter's N(0, 1) prior (10% of the orbital speed) is
    # stronger than 5 frames are about the momenta, and the fit rightly leans on it; at 1e-4 the
    # frames decide.
    system = physics.get("two_body", noise_std=1e-4)
    q0, p0 = system.sample_initial(np.random.default_rng(10), 4)
    times = DT * np.arange(5)
    q, _ = system.simulate(q0, p0, times)
    fit = inference.fit_initial_states(system, q, times)
    np.testing.assert_allclose(fit["x"], np.concatenate([q0, p0], axis=1), atol=1e-4)
    assert fit["u"].shape == (4, 6) and np.all(fit["chi2"] < 1e-3)


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
    np.testing.assert_allclose(out["fit_q"], q, atol=5e-3)  # 1e-4 noise, extrapolated 3x
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
    sharp = (np.abs(physics.render_states(system, a["fit_q"], 32) / 255.0 - background)
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
        inference.posterior_frames(_NoPrior(), q, times, frames_read=3, n_samples=4, seed=0)
    assert e.value.field == "system" and "pendulum" in str(e.value)
    with pytest.raises(DataError) as e:
        inference.fit_initial_states(pendulum, np.zeros((2, 6, 2)), times)
    assert e.value.field == "q_obs"
    with pytest.raises(DataError) as e:
        inference.fit_initial_states(pendulum, q, times[::-1])
    assert e.value.field == "times"


@dataclasses.dataclass(frozen=True, kw_only=True)
class _FailsAboveOne(physics.get("pendulum").__class__):
    """Its simulation fails, as ode.integrate does at a collision, for any batch holding a
    trajectory that starts at q > 1."""

    def simulate(self, q0, p0, times):
        if np.any(np.asarray(q0)[:, 0] > 1):
            raise RuntimeError("ODE step size underflowed")
        return super().simulate(q0, p0, times)


def test_failed_simulations_are_found_one_by_one_and_left_out():
    system = _FailsAboveOne()
    q0 = np.array([[0.1], [1.5], [0.3], [0.2], [2.0]])
    p0 = np.full_like(q0, 0.5)
    times = DT * np.arange(4)
    q = inference._simulate_or_nan(system, q0, p0, times)
    failed = np.isnan(q).any(axis=(1, 2))
    np.testing.assert_array_equal(failed, [False, True, False, False, True])
    ok = ~failed
    np.testing.assert_array_equal(q[ok], physics.get("pendulum").simulate(q0[ok], p0[ok], times)[0])
