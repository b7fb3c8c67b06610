"""Properties of hgn_tf.physics: Hamilton's equations, conservation, analytic solutions, sampling,
validation, and the determinism and geometry of `generate`."""

import dataclasses

import numpy as np
import pytest

from hgn_tf import physics
from hgn_tf.errors import DataError
from hgn_tf.physics.generate import generate
from hgn_tf.physics.render import DEFAULT_BACKGROUND, render

TIMES = np.arange(30) * 0.125
# Every system variant: (registry name, overrides).
VARIANTS = [(name, {}) for name in physics.SYSTEM_NAMES] + [
    ("double_pendulum", {"kinetic": "reproduction"})
]
CONSERVATIVE = [v for v in VARIANTS if v[0] != "damped_oscillator"]
ONE_DIMENSIONAL = ("mass_spring", "pendulum", "damped_oscillator")


def _id(variant):
    name, overrides = variant
    return name + "".join(f"-{v}" for v in overrides.values())


def _system(variant):
    name, overrides = variant
    return physics.get(name, **overrides)


def _initial(system, n=32, seed=0):
    return system.sample_initial(np.random.default_rng(seed), n)


# ---------------------------------------------------------------------------------------------
# Registry and the system contract.


def test_registry_names_and_contract():
    assert physics.SYSTEM_NAMES == (
        "mass_spring",
        "pendulum",
        "two_body",
        "three_body",
        "double_pendulum",
        "damped_oscillator",
    )
    dims = {
        "mass_spring": 1,
        "pendulum": 1,
        "two_body": 4,
        "three_body": 6,
        "double_pendulum": 2,
        "damped_oscillator": 1,
    }
    for name in physics.SYSTEM_NAMES:
        system = physics.get(name)
        assert system.name == name
        assert system.dim == dims[name]
        assert len(set(system.colours)) == system.n_bodies
        assert set(system.constants()) <= {f.name for f in dataclasses.fields(system)}
        q, p = _initial(system, 5)
        assert system.positions(q).shape == (5, system.n_bodies, 2)
        assert system.hamiltonian(q, p).shape == (5,)


def test_constants_are_the_papers():
    assert physics.get("mass_spring").constants() == {"k": 2.0, "m": 0.5}
    assert physics.get("pendulum").constants() == {"m": 0.5, "g": 3.0, "l": 1.0}
    assert physics.get("two_body").constants() == {"m": 1.0, "g": 1.0}
    assert physics.get("double_pendulum").constants() == {"m": 1.0, "l": 1.0, "g": 3.0}
    assert physics.get("damped_oscillator").constants() == {"gamma": 0.3, "m": 0.5, "k": 2.0}
    assert physics.get("three_body").radius_range == (0.9, 1.2)
    assert physics.get("three_body").noise_std == 0.2


def test_overrides_replace_fields():
    system = physics.get("pendulum", g=9.81, radius_range=[0.5, 1.0], noise_std=0)
    assert (system.g, system.radius_range, system.noise_std) == (9.81, (0.5, 1.0), 0.0)


# ---------------------------------------------------------------------------------------------
# Hamilton's equations and the simulator.


@pytest.mark.parametrize("variant", VARIANTS, ids=_id)
def test_dynamics_are_the_gradients_of_the_hamiltonian(variant):
    """dq/dt = dH/dp and dp/dt = -dH/dq, against central finite differences of `hamiltonian`."""
    system = _system(variant)
    rng = np.random.default_rng(1)
    q, p = _initial(system, 16)
    q = q + 0.1 * rng.standard_normal(q.shape)  # off the sampler's special states
    p = p + 0.1 * rng.standard_normal(p.shape)
    t = rng.uniform(0, 4, size=16)
    dq, dp = system.dynamics(q, p, t)
    eps = 1e-6
    for j in range(system.dim):
        e = np.zeros(system.dim)
        e[j] = eps
        dh_dq = (system.hamiltonian(q + e, p, t) - system.hamiltonian(q - e, p, t)) / (2 * eps)
        dh_dp = (system.hamiltonian(q, p + e, t) - system.hamiltonian(q, p - e, t)) / (2 * eps)
        np.testing.assert_allclose(dq[:, j], dh_dp, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(dp[:, j], -dh_dq, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("variant", CONSERVATIVE, ids=_id)
def test_energy_is_conserved(variant):
    system = _system(variant)
    q0, p0 = _initial(system, 64)
    q, p = system.simulate(q0, p0, TIMES)
    energy = system.hamiltonian(q, p)
    drift = np.abs(energy - energy[:, :1]).max(axis=1) / np.abs(energy[:, 0])
    assert drift.max() < 1e-6
    assert np.abs(q[:, -1] - q0).max() > 0.1  # the bodies did move


def test_mass_spring_matches_its_analytic_solution():
    system = physics.get("mass_spring")
    q0, p0 = _initial(system, 64)
    times = 1.0 + TIMES  # an initial time other than 0
    q, p = system.simulate(q0, p0, times)
    q_exact, p_exact = system.analytic_solution(q0, p0, times)
    np.testing.assert_allclose(q, q_exact, rtol=0, atol=1e-9)
    np.testing.assert_allclose(p, p_exact, rtol=0, atol=1e-9)
    # With the paper's constants m w = 1, so the radius r on the phase circle is the amplitude.
    assert np.all(np.abs(q).max(axis=1) <= np.hypot(q0, p0) + 1e-9)


def test_damped_oscillator_matches_the_underdamped_solution_and_loses_energy():
    system = physics.get("damped_oscillator")
    q0, p0 = _initial(system, 64)
    times = np.arange(80) * 0.125  # 10 time units: several periods
    q, p = system.simulate(q0, p0, times)
    q_exact, p_exact = system.analytic_solution(q0, p0, times)
    np.testing.assert_allclose(q, q_exact, rtol=0, atol=1e-9)
    np.testing.assert_allclose(p, p_exact, rtol=0, atol=1e-8)
    # The analytic solution obeys m q'' + m gamma q' + k q = 0, with q' = exp(-gamma t) p / m.
    fine = np.linspace(0.0, 2.0, 2001)
    q_fine, p_fine = system.analytic_solution(q0[:4], p0[:4], fine)
    velocity = np.exp(-system.gamma * fine)[None, :, None] * p_fine / system.m
    np.testing.assert_allclose(
        np.gradient(q_fine, fine, axis=1)[:, 1:-1], velocity[:, 1:-1], atol=1e-5
    )
    acceleration = np.gradient(velocity, fine, axis=1)[:, 1:-1]
    residual = (
        acceleration + system.gamma * velocity[:, 1:-1] + system.k / system.m * q_fine[:, 1:-1]
    )
    assert np.abs(residual).max() < 1e-4
    # The mechanical energy never increases (dE/dt = -m gamma q'^2) ...
    energy = system.mechanical_energy(q, p, times[None, :])
    assert np.all(np.diff(energy, axis=1) <= 1e-9)
    # Averaged over a period, E decays like exp(-gamma t): after 10 time units, E/E0 ~ 0.05.
    ratio = energy[:, -1] / energy[:, 0]
    assert np.all((ratio > 0.01) & (ratio < 0.2))


def test_double_pendulum_geometry():
    system = physics.get("double_pendulum")
    q, _ = _initial(system, 16)
    bobs = system.positions(q)
    np.testing.assert_allclose(np.linalg.norm(bobs[:, 0], axis=-1), system.l)
    np.testing.assert_allclose(np.linalg.norm(bobs[:, 1] - bobs[:, 0], axis=-1), system.l)
    rest = system.positions(np.zeros((1, 2)))[0]
    np.testing.assert_allclose(rest, [[0, -1], [0, -2]], atol=1e-15)


def test_two_kinetic_forms_differ():
    q, p = np.array([[0.3, -0.4]]), np.array([[0.5, 0.7]])
    standard = physics.get("double_pendulum").hamiltonian(q, p)
    reproduction = physics.get("double_pendulum", kinetic="reproduction").hamiltonian(q, p)
    assert abs(standard[0] - reproduction[0]) > 0.1


def test_simulation_of_a_trajectory_does_not_depend_on_its_batch():
    system = physics.get("three_body")
    q0, p0 = _initial(system, 12)
    q_all, p_all = system.simulate(q0, p0, TIMES)
    q_some, p_some = system.simulate(q0[5:8], p0[5:8], TIMES)
    np.testing.assert_array_equal(q_all[5:8], q_some)
    np.testing.assert_array_equal(p_all[5:8], p_some)


# ---------------------------------------------------------------------------------------------
# Initial states.


@pytest.mark.parametrize("name", ONE_DIMENSIONAL + ("double_pendulum",))
def test_initial_states_lie_on_a_phase_space_sphere_of_radius_in_range(name):
    system = physics.get(name)
    q, p = _initial(system, 2000)
    radius = np.linalg.norm(np.concatenate([q, p], axis=-1), axis=-1)
    lo, hi = system.radius_range
    assert radius.min() >= lo and radius.max() <= hi
    assert radius.min() < lo + 0.05 * (hi - lo) and radius.max() > hi - 0.05 * (hi - lo)
    # Uniform direction: the mean of the unit vector is ~0.
    direction = np.concatenate([q, p], axis=-1) / radius[:, None]
    assert np.abs(direction.mean(axis=0)).max() < 0.1


@pytest.mark.parametrize("name", ("two_body", "three_body"))
def test_nbody_initial_states(name):
    system = physics.get(name)
    q, p = _initial(system, 500)
    bodies = system.positions(q)
    centre = bodies.mean(axis=1, keepdims=True)
    distance = np.linalg.norm(bodies - centre, axis=-1)
    lo, hi = system.radius_range
    assert distance.min() >= lo and distance.max() <= hi
    np.testing.assert_allclose(
        distance, np.broadcast_to(distance[:, :1], distance.shape), rtol=1e-12
    )  # a regular polygon
    momentum = p.reshape(500, system.n_bodies, 2).sum(axis=1)
    np.testing.assert_allclose(momentum, 0, atol=1e-12)


@pytest.mark.parametrize("name", ("two_body", "three_body"))
def test_nbody_orbit_without_jitter_is_circular(name):
    """The circular-orbit speed v^2 = (g m / 4r) sum_k csc(pi k / B) keeps every radius constant."""
    system = physics.get(name, velocity_jitter=0.0)
    q0, p0 = _initial(system, 8)
    q, _ = system.simulate(q0, p0, TIMES)
    radius = np.linalg.norm(system.positions(q), axis=-1)  # the centre of mass is the origin
    np.testing.assert_allclose(radius, np.broadcast_to(radius[:, :1], radius.shape), rtol=1e-8)
    assert np.abs(q[:, -1] - q0).max() > 0.2


# ---------------------------------------------------------------------------------------------
# Validation.


def _raises(match_all, fn, *args, **kwargs):
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    for text in match_all:
        assert text in str(info.value), (text, str(info.value))


def test_unknown_system():
    _raises(["'spring'", "mass_spring", "three_body", "allowed"], physics.get, "spring")


def test_unknown_field():
    _raises(["stiffness", "3.0", "valid fields", "'k'"], physics.get, "mass_spring", stiffness=3.0)
    _raises(["name", "valid fields"], physics.get, "mass_spring", name="other")


@pytest.mark.parametrize(
    "name, overrides, words",
    [
        ("mass_spring", {"m": -1.0}, ["m=-1.0", "> 0"]),
        ("pendulum", {"l": 0}, ["l=0", "> 0"]),
        ("two_body", {"g": "heavy"}, ["g='heavy'", "real number"]),
        ("mass_spring", {"radius_range": (1.0, 0.5)}, ["radius_range=(1.0, 0.5)", "lo < hi"]),
        ("mass_spring", {"radius_range": (-0.1, 1.0)}, ["radius_range=(-0.1, 1.0)", "0 <= lo"]),
        ("mass_spring", {"radius_range": 1.0}, ["radius_range=1.0", "pair"]),
        ("pendulum", {"noise_std": -0.1}, ["noise_std=-0.1", ">= 0"]),
        ("three_body", {"velocity_jitter": -1}, ["velocity_jitter=-1.0", ">= 0"]),
        (
            "double_pendulum",
            {"kinetic": "textbook"},
            ["kinetic='textbook'", "standard", "reproduction"],
        ),
        ("damped_oscillator", {"gamma": 5.0}, ["gamma=5.0", "underdamped"]),
        ("pendulum", {"body_radius": 2.0}, ["body_radius=2.0", "world_extent"]),
    ],
)
def test_bad_field_values(name, overrides, words):
    _raises([name, "allowed", *words], physics.get, name, **overrides)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"n": 0}, ["n=0", ">= 1"]),
        ({"n_frames": 0}, ["n_frames=0", ">= 1"]),
        ({"dt": 0.0}, ["dt=0.0", "> 0"]),
        ({"dt": -0.1}, ["dt=-0.1", "> 0"]),
        ({"split": "dev"}, ["split='dev'", "train", "test", "validation"]),
        ({"seed": -1}, ["seed=-1", ">= 0"]),
        ({"start_index": 1.5}, ["start_index=1.5", "integer"]),
        ({"resolution": 48}, ["resolution=48", "(32, 64)"]),
    ],
)
def test_bad_generate_arguments(kwargs, words):
    arguments = {"n": 2, "seed": 0, "split": "train", **kwargs}
    _raises([*words, "allowed"], generate, "mass_spring", arguments.pop("n"), **arguments)


# ---------------------------------------------------------------------------------------------
# generate().


def test_generate_outputs_are_consistent():
    system = physics.get("damped_oscillator")
    data = generate(system, 8, seed=3, split="train", n_frames=12, dt=0.25)
    np.testing.assert_array_equal(data["t"], (np.arange(12) * 0.25).astype(np.float32))
    np.testing.assert_array_equal(data["index"], np.arange(8))
    assert data["frames"].dtype == np.uint8 and data["frames"].shape == (8, 12, 32, 32, 3)
    assert data["index"].dtype == np.int64
    for key in ("q", "p", "q_noisy", "p_noisy", "energy", "t"):
        assert data[key].dtype == np.float32, key
    q, p, t = (data[k].astype(np.float64) for k in ("q", "p", "t"))
    # The stored energy is H of the clean state at each frame's own time.
    np.testing.assert_allclose(data["energy"], system.hamiltonian(q, p, t[None, :]), rtol=1e-6)
    # The clean states follow the dynamics from their first frame.
    q_exact, p_exact = system.analytic_solution(q[:, 0], p[:, 0], t)
    np.testing.assert_allclose(q, q_exact, atol=1e-6)
    np.testing.assert_allclose(p, p_exact, atol=1e-6)
    # Noise of std noise_std on every coordinate (8 x 12 x 2 samples).
    noise = np.concatenate([data["q_noisy"] - data["q"], data["p_noisy"] - data["p"]])
    assert 0.08 < noise.std() < 0.12
    # The frames are the noisy positions, rendered.
    expected = render(
        system.positions(data["q_noisy"].astype(np.float64)),
        extent=system.world_extent,
        body_radius=system.body_radius,
        colours=system.colours,
    )
    np.testing.assert_array_equal(data["frames"], expected)


def test_generate_is_deterministic_and_independent_of_chunking():
    # A small canvas, so that some examples are rejected and redrawn.
    system = physics.get("mass_spring", world_extent=1.25)
    whole = generate(system, 10, seed=7, split="test")
    part = generate(system, 3, seed=7, split="test", start_index=5)
    again = generate(system, 10, seed=7, split="test")
    for key in whole:
        if key != "t":
            np.testing.assert_array_equal(whole[key][5:8], part[key], err_msg=key)
        np.testing.assert_array_equal(whole[key], again[key], err_msg=key)
    other_split = generate(system, 3, seed=7, split="train", start_index=5)
    other_seed = generate(system, 3, seed=8, split="test", start_index=5)
    assert not np.array_equal(other_split["q"], part["q"])
    assert not np.array_equal(other_seed["q"], part["q"])


def test_rejection_redraws_exactly_the_examples_that_leave_the_canvas():
    roomy = physics.get("mass_spring")  # nothing leaves this canvas (checked below)
    small = physics.get("mass_spring", world_extent=1.25)
    first = generate(roomy, 40, seed=0, split="train")
    kept = generate(small, 40, seed=0, split="train")

    def reach(system, data):
        positions = system.positions(data["q_noisy"].astype(np.float64))
        return (np.abs(positions) + system.body_radius).max(axis=(1, 2, 3))

    assert reach(roomy, first).max() <= roomy.world_extent
    assert reach(small, kept).max() <= small.world_extent
    fits = reach(small, first) <= small.world_extent  # the first draw would fit the small canvas
    assert 5 <= (~fits).sum() <= 35
    np.testing.assert_array_equal(kept["q_noisy"][fits], first["q_noisy"][fits])
    assert np.all(np.any(kept["q"][~fits] != first["q"][~fits], axis=(1, 2)))


def test_generate_gives_up_with_a_clear_error():
    system = physics.get("mass_spring", world_extent=0.35, body_radius=0.3)
    with pytest.raises(RuntimeError, match="left the canvas in 100 attempts"):
        generate(system, 1, seed=0, split="train", n_frames=30)


@pytest.mark.parametrize("name", physics.SYSTEM_NAMES)
def test_generated_discs_stay_inside_the_canvas(name):
    system = physics.get(name)
    data = generate(system, 6, seed=1, split="validation")
    reach = np.abs(system.positions(data["q_noisy"].astype(np.float64))) + system.body_radius
    assert reach.max() <= system.world_extent
    if system.n_bodies == 1:
        # A disc that is never cut by the border has the same ink in every frame.
        background = np.round(np.asarray(DEFAULT_BACKGROUND) * 255)
        ink = np.abs(data["frames"].astype(np.float64) - background).sum(axis=(2, 3, 4))
        spread = (ink.max(axis=1) - ink.min(axis=1)) / ink.mean(axis=1)
        assert spread.max() < 0.02
