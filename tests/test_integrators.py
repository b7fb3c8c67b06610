"""Properties of hgn_tf.integrators: order, reversibility, energy, symplecticity, true vector field.

Every claim in the module docstring (declared order, symplectic or not, reversibility, the
number of Hamiltonian evaluations, first order on non-separable H) is checked here numerically.
"""

import numpy as np
import pytest
import tensorflow as tf

from hgn_tf import integrators
from hgn_tf.errors import ConfigError

SYMPLECTIC = ("leapfrog", "yoshida")


# ---------------------------------------------------------------------------------------------
# Hamiltonians. Each returns one energy per sample; q, p are [B, n].


def harmonic(q, p):
    """H = q^2/2 + p^2/2; exact flow: rotation of (q, p) by angle t (clockwise)."""
    return tf.reduce_sum(q**2 / 2 + p**2 / 2, axis=-1)


def harmonic_exact(q0, p0, t):
    return q0 * np.cos(t) + p0 * np.sin(t), p0 * np.cos(t) - q0 * np.sin(t)


def pendulum(q, p):
    """Separable, nonlinear: H = p^2/2 + (1 - cos q)."""
    return tf.reduce_sum(p**2 / 2 + (1 - tf.cos(q)), axis=-1)


def coupled_pendulums(q, p):
    """Separable, 2 degrees of freedom: H = |p|^2/2 + sum(1 - cos q) + (q_1 - q_2)^2/2."""
    return tf.reduce_sum(p**2 / 2 + (1 - tf.cos(q)), axis=-1) + (q[:, 0] - q[:, 1]) ** 2 / 2


def non_separable(q, p):
    """H = q^2 p^2/2 + q^2/2 + p^2/2 (H_qp = 2 q p != 0)."""
    return tf.reduce_sum(q**2 * p**2 / 2 + q**2 / 2 + p**2 / 2, axis=-1)


def rng_state(batch, dim, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (
        tf.constant(rng.uniform(-1.5, 1.5, (batch, dim)), dtype),
        tf.constant(rng.uniform(-1.0, 1.0, (batch, dim)), dtype),
    )


def compiled_rollout(name, hamiltonian):
    """A tf.function rollout(q0, p0, dt, n_steps); dt and n_steps as tensors avoid retracing."""

    @tf.function(reduce_retracing=True)
    def rollout(q0, p0, dt, n_steps):
        return integrators.integrate(integrators.get(name), hamiltonian, q0, p0, dt, n_steps)

    return rollout


def final_error(name, hamiltonian, q0, p0, t_end, n_steps, reference):
    rollout = compiled_rollout(name, hamiltonian)
    errors = []
    for n in n_steps:
        qs, ps = rollout(q0, p0, tf.constant(t_end / n, tf.float64), tf.constant(n))
        errors.append(np.max(np.hypot(qs[-1] - reference[0], ps[-1] - reference[1])))
    return np.array(errors)


def fitted_order(dts, errors):
    return np.polyfit(np.log(dts), np.log(errors), 1)[0]


# ---------------------------------------------------------------------------------------------
# Registry and metadata.


def test_registry_metadata():
    expected = {
        "euler": (1, False),
        "leapfrog": (2, True),
        "rk4": (4, False),
        "yoshida": (4, True),
    }
    assert integrators.NAMES == ("euler", "leapfrog", "rk4", "yoshida")
    for name, (order, symplectic) in expected.items():
        integ = integrators.get(name)
        assert (integ.name, integ.order, integ.symplectic) == (name, order, symplectic)


def test_unknown_name_raises_naming_value_and_valid_names():
    with pytest.raises(ConfigError, match="'verlet'") as info:
        integrators.get("verlet")
    for name in integrators.NAMES:
        assert name in str(info.value)


def test_yoshida_weights_are_the_triple_jump():
    cbrt2 = 2 ** (1 / 3)
    w1, w0 = 1 / (2 - cbrt2), -cbrt2 / (2 - cbrt2)
    np.testing.assert_allclose(integrators.get("yoshida").weights, (w1, w0, w1), rtol=1e-15)


def test_coefficients_are_checked_on_construction():
    tableau = integrators.ButcherTableau
    with pytest.raises(ConfigError, match="sum"):  # Row of A does not sum to c.
        tableau(c=(0.0, 0.5), a=((), (0.4,)), b=(0.0, 1.0))
    with pytest.raises(ConfigError, match="b must sum to 1"):
        tableau(c=(0.0,), a=((),), b=(0.9,))
    with pytest.raises(ConfigError, match="strictly"):  # Implicit (diagonal) entry.
        tableau(c=(0.0,), a=((0.0,),), b=(1.0,))
    euler = tableau(c=(0.0,), a=((),), b=(1.0,))
    rk4 = integrators.get("rk4").tableau
    with pytest.raises(ConfigError, match="order=2"):
        integrators.ExplicitRungeKutta("euler2", order=2, tableau=euler)
    with pytest.raises(ConfigError, match="order=3"):  # Under-declared: rk4 has order 4.
        integrators.ExplicitRungeKutta("rk3", order=3, tableau=rk4)

    composition = integrators.SymplecticComposition
    with pytest.raises(ConfigError, match="sum to 1"):
        composition("bad", order=2, weights=(0.5, 0.4))
    with pytest.raises(ConfigError, match="palindromic"):
        composition("bad", order=2, weights=(0.3, 0.7))
    with pytest.raises(ConfigError, match="order=2"):  # Triple jump is order 4.
        composition("bad", order=2, weights=integrators.get("yoshida").weights)
    with pytest.raises(ConfigError, match="order=4"):  # Three equal thirds are order 2.
        composition("bad", order=4, weights=(1 / 3, 1 / 3, 1 / 3))


@pytest.mark.parametrize(
    "name,evaluations", [("euler", 1), ("leapfrog", 3), ("rk4", 4), ("yoshida", 9)]
)
def test_hamiltonian_evaluations_per_step(name, evaluations):
    calls = []

    def counting(q, p):
        calls.append(1)
        return harmonic(q, p)

    q, p = rng_state(2, 1, seed=0)
    integrators.get(name).step(counting, q, p, 0.1)
    assert len(calls) == evaluations


# ---------------------------------------------------------------------------------------------
# The vector field comes from the Hamiltonian (dq/dt = dH/dp, never p).


def test_vector_field_is_hamiltons_equations_for_non_separable_h():
    q, p = rng_state(5, 3, seed=1)
    dq_dt, dp_dt = integrators.vector_field(non_separable, q, p)
    np.testing.assert_allclose(dq_dt, q**2 * p + p, rtol=1e-14)
    np.testing.assert_allclose(dp_dt, -(q * p**2 + q), rtol=1e-14)


def test_vector_field_of_a_hamiltonian_without_p_is_zero_not_none():
    q, p = rng_state(2, 1, seed=2)
    dq_dt, dp_dt = integrators.vector_field(lambda q, p: tf.reduce_sum(q**2, -1), q, p)
    np.testing.assert_array_equal(dq_dt, 0.0)
    np.testing.assert_allclose(dp_dt, -2 * q)


def test_euler_step_matches_analytic_update_on_non_separable_h():
    q, p = rng_state(5, 3, seed=3)
    dt = 0.1  # A python float: must not be rounded to float32 on the way to float64.
    q1, p1 = integrators.get("euler").step(non_separable, q, p, dt)
    np.testing.assert_allclose(q1, q + dt * (q**2 * p + p), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(p1, p - dt * (q * p**2 + q), rtol=1e-15, atol=1e-15)


def test_leapfrog_matches_stormer_verlet_with_mass():
    m, k, dt = 0.5, 2.0, 0.125

    def spring(q, p):
        return tf.reduce_sum(p**2 / (2 * m) + k * q**2 / 2, axis=-1)

    q, p = rng_state(4, 2, seed=4)
    q1, p1 = integrators.get("leapfrog").step(spring, q, p, dt)
    p_half = p - dt / 2 * k * q
    q_expected = q + dt * p_half / m  # dq/dt = dH/dp = p/m, not p.
    p_expected = p_half - dt / 2 * k * q_expected
    np.testing.assert_allclose(q1, q_expected, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(p1, p_expected, rtol=1e-14, atol=1e-15)


def test_leapfrog_on_non_separable_h_evaluates_documented_arguments():
    q, p = rng_state(5, 1, seed=5)
    h = 0.2
    q1, p1 = integrators.get("leapfrog").step(non_separable, q, p, h)
    p_half = p - h / 2 * (q * p**2 + q)  # dH/dq(q, p)
    q_expected = q + h * (q**2 * p_half + p_half)  # dH/dp(q, p_half)
    p_expected = p_half - h / 2 * (q_expected * p_half**2 + q_expected)  # dH/dq(q1, p_half)
    np.testing.assert_allclose(q1, q_expected, rtol=1e-14)
    np.testing.assert_allclose(p1, p_expected, rtol=1e-14)


def test_yoshida_is_three_leapfrog_substeps():
    q, p = rng_state(3, 2, seed=6)
    dt = 0.3
    leapfrog = integrators.get("leapfrog")
    yoshida = integrators.get("yoshida")
    q_ref, p_ref = q, p
    for w in yoshida.weights:
        q_ref, p_ref = leapfrog.step(non_separable, q_ref, p_ref, w * dt)
    q1, p1 = yoshida.step(non_separable, q, p, dt)
    np.testing.assert_allclose(q1, q_ref, rtol=1e-14)
    np.testing.assert_allclose(p1, p_ref, rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# Order of accuracy.


@pytest.mark.parametrize("name", integrators.NAMES)
def test_convergence_order_on_harmonic_oscillator(name):
    q0, p0 = rng_state(3, 1, seed=7)
    t_end = 1.0
    n_steps = np.array([10, 20, 40, 80])
    reference = harmonic_exact(q0.numpy(), p0.numpy(), t_end)
    errors = final_error(name, harmonic, q0, p0, t_end, n_steps, reference)
    slope = fitted_order(t_end / n_steps, errors)
    assert abs(slope - integrators.get(name).order) < 0.3, (slope, errors)


@pytest.mark.parametrize("name", integrators.NAMES)
def test_backward_integration_matches_exact_past(name):
    q0, p0 = rng_state(3, 1, seed=8)
    qs, ps = compiled_rollout(name, harmonic)(q0, p0, tf.constant(-0.01, tf.float64), 100)
    q_exact, p_exact = harmonic_exact(q0.numpy(), p0.numpy(), -1.0)
    tolerance = {1: 1e-2, 2: 1e-4, 4: 1e-8}[integrators.get(name).order]
    np.testing.assert_allclose(qs[-1], q_exact, atol=tolerance)
    np.testing.assert_allclose(ps[-1], p_exact, atol=tolerance)


def test_symplectic_compositions_are_first_order_on_non_separable_h():
    """Documents the caveat: on H with H_qp != 0 the explicit leapfrog/yoshida lose their order."""
    q0, p0 = rng_state(2, 1, seed=9)
    t_end = 1.0
    qs, ps = compiled_rollout("rk4", non_separable)(
        q0, p0, tf.constant(t_end / 2000, tf.float64), 2000
    )
    reference = (qs[-1].numpy(), ps[-1].numpy())
    n_steps = np.array([20, 40, 80])
    for name in ("rk4",) + SYMPLECTIC:
        errors = final_error(name, non_separable, q0, p0, t_end, n_steps, reference)
        expected = 4 if name == "rk4" else 1
        assert abs(fitted_order(t_end / n_steps, errors) - expected) < 0.3, (name, errors)


# ---------------------------------------------------------------------------------------------
# Geometric properties on separable H.


@pytest.mark.parametrize("name", SYMPLECTIC)
def test_one_step_forward_then_backward_is_identity(name):
    q, p = rng_state(6, 2, seed=10)
    integ = integrators.get(name)
    q1, p1 = integ.step(coupled_pendulums, q, p, 0.3)
    q2, p2 = integ.step(coupled_pendulums, q1, p1, -0.3)
    np.testing.assert_allclose(q2, q, rtol=0, atol=1e-10)
    np.testing.assert_allclose(p2, p, rtol=0, atol=1e-10)


def test_rk4_is_not_time_reversible():
    q, p = rng_state(6, 1, seed=11)
    integ = integrators.get("rk4")
    q2, p2 = integ.step(pendulum, *integ.step(pendulum, q, p, 0.3), -0.3)
    assert np.max(np.abs(np.concatenate([q2 - q, p2 - p]))) > 1e-6


@pytest.mark.parametrize("name", integrators.NAMES)
def test_rollout_forward_then_backward_returns_near_start(name):
    q0, p0 = rng_state(4, 1, seed=12)
    rollout = compiled_rollout(name, pendulum)
    qs, ps = rollout(q0, p0, tf.constant(0.05, tf.float64), 50)
    qb, pb = rollout(qs[-1], ps[-1], tf.constant(-0.05, tf.float64), 50)
    distance = np.max(np.abs(np.concatenate([qb[-1] - q0, pb[-1] - p0])))
    tolerance = (
        1e-10 if name in SYMPLECTIC else {"euler": 0.25, "rk4": 1e-6}[name]
    )  # Euler: O(T dt)
    assert distance < tolerance
    assert np.max(np.abs(qs[-1] - q0)) > 0.05  # It did move.


def step_jacobian(name, hamiltonian, x, dt):
    """Jacobian [B, 2n, 2n] of x = (q, p) -> step(x)."""
    n = x.shape[1] // 2
    with tf.GradientTape() as tape:
        tape.watch(x)
        q1, p1 = integrators.get(name).step(hamiltonian, x[:, :n], x[:, n:], dt)
        x1 = tf.concat([q1, p1], axis=1)
    return tape.batch_jacobian(x1, x).numpy()


@pytest.mark.parametrize("name", SYMPLECTIC)
def test_step_is_symplectic_on_separable_h(name):
    q, p = rng_state(5, 2, seed=13)
    jac = step_jacobian(name, coupled_pendulums, tf.concat([q, p], axis=1), 0.3)
    np.testing.assert_allclose(np.linalg.det(jac), 1.0, rtol=0, atol=1e-10)
    omega = np.block([[np.zeros((2, 2)), np.eye(2)], [-np.eye(2), np.zeros((2, 2))]])
    np.testing.assert_allclose(
        np.einsum("bji,jk,bkl->bil", jac, omega, jac), np.broadcast_to(omega, jac.shape), atol=1e-10
    )


@pytest.mark.parametrize("name", SYMPLECTIC)
def test_symplectic_guarantees_fail_on_non_separable_h(name):
    """Documents the caveat: with H_qp != 0 the explicit scheme is neither reversible nor
    volume preserving."""
    q, p = rng_state(5, 1, seed=20)
    integ = integrators.get(name)
    q2, p2 = integ.step(non_separable, *integ.step(non_separable, q, p, 0.3), -0.3)
    assert np.max(np.abs(np.concatenate([q2 - q, p2 - p]))) > 1e-4
    jac = step_jacobian(name, non_separable, tf.concat([q, p], axis=1), 0.3)
    assert np.max(np.abs(np.linalg.det(jac) - 1.0)) > 1e-4


def test_euler_step_is_not_volume_preserving():
    q, p = rng_state(5, 2, seed=14)
    jac = step_jacobian("euler", coupled_pendulums, tf.concat([q, p], axis=1), 0.3)
    assert np.all(np.abs(np.linalg.det(jac) - 1.0) > 1e-3)


def energy_error(name, n_steps, dt=0.1):
    q0 = tf.constant([[0.5], [1.0], [2.0], [-1.5]], tf.float64)
    p0 = tf.constant([[0.3], [0.0], [0.5], [1.0]], tf.float64)
    qs, ps = compiled_rollout(name, pendulum)(q0, p0, tf.constant(dt, tf.float64), n_steps)
    energies = pendulum(tf.reshape(qs, [-1, 1]), tf.reshape(ps, [-1, 1])).numpy()
    return np.abs(energies.reshape(n_steps + 1, -1) - pendulum(q0, p0).numpy()).max(axis=1)


@pytest.mark.parametrize("name,bound", [("leapfrog", 1e-2), ("yoshida", 1e-4)])
def test_symplectic_energy_error_is_bounded_over_10000_steps(name, bound):
    error = energy_error(name, 10_000)
    first_half, second_half = error[:5000].max(), error[5000:].max()
    assert second_half < bound
    assert second_half < 1.1 * first_half  # No drift: the oscillation does not grow.


@pytest.mark.parametrize("name", ["euler", "rk4"])
def test_non_symplectic_energy_error_grows(name):
    error = energy_error(name, 10_000)
    assert error[-1] > 10 * error[100]
    assert error[5000:].max() > 1.5 * error[:5000].max()


# ---------------------------------------------------------------------------------------------
# Differentiability, tf.function, dtypes.


@pytest.mark.parametrize("name", integrators.NAMES)
def test_gradient_through_rollout_wrt_hamiltonian_variable_matches_finite_difference(name):
    w = tf.Variable(1.3, dtype=tf.float64)

    def weighted(q, p):  # dq/dt = w p: d(q_T)/dw needs the second derivative d(dH/dp)/dw.
        return w * tf.reduce_sum(q**2 + p**2, axis=-1) / 2

    q0, p0 = rng_state(3, 2, seed=15)

    @tf.function
    def final_q_and_gradient():
        with tf.GradientTape() as tape:
            qs, _ = integrators.integrate(integrators.get(name), weighted, q0, p0, 0.1, 5)
            final = tf.reduce_sum(qs[-1])
        return final, tape.gradient(final, w)

    _, gradient = final_q_and_gradient()
    assert gradient is not None
    eps = 1e-6
    w.assign(1.3 + eps)
    plus, _ = final_q_and_gradient()
    w.assign(1.3 - eps)
    minus, _ = final_q_and_gradient()
    np.testing.assert_allclose(gradient, (plus - minus) / (2 * eps), rtol=1e-7)

    # The same in eager mode with a Python loop of steps.
    w.assign(1.3)
    with tf.GradientTape() as tape:
        q, p = q0, p0
        for _ in range(5):
            q, p = integrators.get(name).step(weighted, q, p, 0.1)
        final = tf.reduce_sum(q)
    np.testing.assert_allclose(tape.gradient(final, w), gradient, rtol=1e-12)


def test_keras_hamiltonian_variables_get_gradients_through_leapfrog_rollout():
    import keras

    keras.utils.set_random_seed(0)
    network = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="softplus"), keras.layers.Dense(1)]
    )

    def learned(q, p):
        return tf.squeeze(network(tf.concat([q, p], axis=-1)), axis=-1)

    q0, p0 = rng_state(3, 2, seed=16, dtype=np.float32)

    @tf.function
    def gradients():
        with tf.GradientTape() as tape:
            qs, _ = integrators.integrate(integrators.get("leapfrog"), learned, q0, p0, 0.1, 5)
            loss = tf.reduce_mean(qs**2)
        return tape.gradient(loss, network.trainable_variables)

    *hidden, output_bias = network.trainable_variables
    *hidden_gradients, output_bias_gradient = gradients()
    for variable, gradient in zip(hidden, hidden_gradients):
        assert gradient is not None, variable.path
        assert np.all(np.isfinite(gradient)) and np.any(gradient != 0), variable.path
    # A constant added to H does not change Hamilton's equations: only derivatives of H count.
    assert output_bias.path.endswith("bias")
    np.testing.assert_array_equal(output_bias_gradient, 0.0)


def count_nodes(concrete_function):
    graph_def = concrete_function.graph.as_graph_def()
    return len(graph_def.node) + sum(len(f.node_def) for f in graph_def.library.function)


def test_integrate_graph_size_does_not_grow_with_n_steps_and_matches_python_steps():
    q0, p0 = rng_state(2, 3, seed=17)

    @tf.function
    def rollout(q0, p0, n_steps):
        return integrators.integrate(
            integrators.get("yoshida"), non_separable, q0, p0, 0.05, n_steps
        )

    short = rollout.get_concrete_function(q0, p0, 5)
    long = rollout.get_concrete_function(q0, p0, 500)
    assert count_nodes(short) == count_nodes(long)

    qs, ps = short(q0, p0)
    assert qs.shape == (6, 2, 3)
    q, p = q0, p0
    for t in range(6):
        np.testing.assert_allclose(qs[t], q, rtol=1e-14)
        np.testing.assert_allclose(ps[t], p, rtol=1e-14)
        q, p = integrators.get("yoshida").step(non_separable, q, p, 0.05)


def test_integrate_zero_steps_and_argument_errors():
    q0, p0 = rng_state(2, 1, seed=18)
    qs, ps = integrators.integrate(integrators.get("euler"), harmonic, q0, p0, 0.1, 0)
    np.testing.assert_array_equal(qs, q0[None])
    np.testing.assert_array_equal(ps, p0[None])
    with pytest.raises(ConfigError, match="n_steps.*-1"):
        integrators.integrate(integrators.get("euler"), harmonic, q0, p0, 0.1, -1)
    with pytest.raises(TypeError, match="integrators.get"):
        integrators.integrate("euler", harmonic, q0, p0, 0.1, 3)
    with pytest.raises(TypeError, match="float64.*float32|float32.*float64"):
        integrators.get("euler").step(harmonic, q0, tf.cast(p0, tf.float32), 0.1)


@pytest.mark.parametrize("every", [1, 3, 5])
@pytest.mark.parametrize("n_steps", [0, 1, 4, 5, 6, 11])
def test_decoding_inside_the_loop_equals_decoding_after_it(n_steps, every):
    """`integrate(..., decode=f)` decodes runs of `every` states inside the loop: every state
    exactly once, the last run short where n_steps + 1 is not a multiple of `every`, with the
    values of f applied after the loop; the states are those of the plain loop."""
    q0, p0 = rng_state(2, 3, seed=21)
    def decode(states):  # [m, B, 3] -> [m, B, 2]: not elementwise, so a misplaced row shows
        return tf.stack([tf.reduce_sum(states, -1), states[..., 0] * states[..., 2]], -1)

    @tf.function
    def rollout(q0, p0, n):
        return integrators.integrate(integrators.get("leapfrog"), coupled_pendulums, q0, p0,
                                     0.1, n, decode=decode, decode_every=every)

    qs, ps, decoded = rollout(q0, p0, tf.constant(n_steps))
    want_qs, want_ps = integrators.integrate(integrators.get("leapfrog"), coupled_pendulums,
                                             q0, p0, 0.1, n_steps)
    np.testing.assert_array_equal(qs, want_qs)
    np.testing.assert_array_equal(ps, want_ps)
    assert decoded.shape == (n_steps + 1, 2, 2)
    np.testing.assert_allclose(decoded, decode(want_qs), rtol=1e-15)


def test_decode_every_must_be_a_positive_integer():
    q0, p0 = rng_state(1, 1, seed=22)
    for bad in (0, -2, 1.5):
        with pytest.raises(ConfigError, match="decode_every"):
            integrators.integrate(integrators.get("leapfrog"), pendulum, q0, p0, 0.1, 3,
                                  decode=lambda x: x, decode_every=bad)


@pytest.mark.parametrize("name", integrators.NAMES)
def test_float32_matches_float64_on_image_shaped_state(name):
    """A state shaped like HGN's latent [B, 4, 4, 16]; dt given as a float64 tensor."""

    def image_pendulum(q, p):
        return tf.reduce_sum(p**2 / 2 + (1 - tf.cos(q)), axis=[1, 2, 3])

    rng = np.random.default_rng(19)
    q64 = tf.constant(rng.normal(size=(2, 4, 4, 16)))
    p64 = tf.constant(rng.normal(size=(2, 4, 4, 16)))
    integ = integrators.get(name)
    q1_64, p1_64 = integ.step(image_pendulum, q64, p64, 0.125)
    q1_32, p1_32 = integ.step(
        image_pendulum,
        tf.cast(q64, tf.float32),
        tf.cast(p64, tf.float32),
        tf.constant(0.125, tf.float64),
    )
    assert q1_32.dtype == p1_32.dtype == tf.float32
    np.testing.assert_allclose(q1_32, q1_64, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(p1_32, p1_64, rtol=1e-5, atol=1e-5)
    # Samples are independent: stepping one sample alone gives the same result.
    q_single, _ = integ.step(image_pendulum, q64[:1], p64[:1], 0.125)
    np.testing.assert_allclose(q_single, q1_64[:1], rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# The separable fast path: the same numbers from fewer gradients.


def _separable_net(seed):
    """A learned-looking separable H as a `SeparableHamiltonian` of two small Keras MLPs."""
    import keras

    keras.utils.set_random_seed(seed)

    def mlp():
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(16, "softplus"),
                                 keras.layers.Dense(1, use_bias=False)])

    kinetic, potential = mlp(), mlp()
    separable = integrators.SeparableHamiltonian(lambda p: tf.squeeze(kinetic(p), -1),
                                                 lambda q: tf.squeeze(potential(q), -1))
    variables = kinetic.trainable_variables + potential.trainable_variables
    return separable, variables


@pytest.mark.parametrize("name", SYMPLECTIC)
def test_separable_fast_path_equals_general_path_values_and_gradients(name):
    separable, variables = _separable_net(seed=20)
    general = lambda q, p: separable(q, p)  # noqa: E731  (no `separable` attribute: general path)
    q0, p0 = rng_state(4, 3, seed=21, dtype=np.float32)

    @tf.function
    def run(h):
        with tf.GradientTape() as tape:
            tape.watch([q0, p0])
            qs, ps = integrators.integrate(integrators.get(name), h, q0, p0, 0.1, 12)
            loss = tf.reduce_sum(qs**2) + tf.reduce_sum(tf.sin(ps))
        return qs, ps, tape.gradient(loss, [q0, p0, *variables])

    fast, slow = run(separable), run(general)
    np.testing.assert_allclose(fast[0], slow[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(fast[1], slow[1], rtol=1e-6, atol=1e-7)
    for g_fast, g_slow in zip(fast[2], slow[2]):
        np.testing.assert_allclose(g_fast, g_slow, rtol=2e-5, atol=1e-6)
    # One python-level step takes the same path.
    q1, p1 = integrators.get(name).step(separable, q0, p0, 0.1)
    np.testing.assert_allclose(q1, fast[0][1], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(p1, fast[1][1], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name,v_calls,k_calls", [("leapfrog", 2, 1), ("yoshida", 4, 3)])
def test_separable_step_differentiates_each_term_only_where_needed(name, v_calls, k_calls):
    calls = {"K": 0, "V": 0}

    def kinetic(p):
        calls["K"] += 1
        return tf.reduce_sum(p**2 / 2, axis=-1)

    def potential(q):
        calls["V"] += 1
        return tf.reduce_sum(1 - tf.cos(q), axis=-1)

    q, p = rng_state(2, 1, seed=22)
    q1, p1 = integrators.get(name).step(integrators.SeparableHamiltonian(kinetic, potential),
                                         q, p, 0.1)
    assert calls == {"K": k_calls, "V": v_calls}
    q2, p2 = integrators.get(name).step(pendulum, q, p, 0.1)  # the general path, 3 per sub-step
    np.testing.assert_allclose(q1, q2, rtol=1e-14)
    np.testing.assert_allclose(p1, p2, rtol=1e-14)


def test_hamiltonian_net_is_taken_as_separable_only_when_it_is():
    from hgn_tf.integrators import _separable_terms
    from hgn_tf.networks import HamiltonianNet

    assert _separable_terms(HamiltonianNet(4, 1, separable=True)) is not None
    assert _separable_terms(HamiltonianNet(4, 1, separable=False)) is None
    assert _separable_terms(pendulum) is None


def test_separable_fast_path_keeps_the_hamiltonian_net_weight_names():
    """The fast path calls K and V on their own; an unbuilt net still names its weights under
    its own name (checkpoints and the variable paths stay as before)."""
    from hgn_tf.networks import HamiltonianNet

    net = HamiltonianNet(4, 1, separable=True, name="hamiltonian")
    q, p = (tf.zeros([2, 2, 2, 3]),) * 2
    integrators.integrate(integrators.get("leapfrog"), net, q, p, 0.1, 2)
    paths = sorted(v.path for v in net.trainable_variables)
    assert paths and all(path.startswith("hamiltonian/kinetic/") or
                         path.startswith("hamiltonian/potential/") for path in paths), paths


def _xla_calls(concrete) -> int:
    """How many function calls in `concrete`'s graph (and the functions it calls) XLA compiles."""
    graphs = [concrete.graph.as_graph_def()]
    nodes = list(graphs[0].node) + [n for f in graphs[0].library.function for n in f.node_def]
    return sum(1 for n in nodes if "_XlaMustCompile" in n.attr and n.attr["_XlaMustCompile"].b)


def test_xla_steps_give_the_same_rollout_and_compile_only_small_batches():
    from hgn_tf.networks import HamiltonianNet

    net = HamiltonianNet(filters=8, layers=2)
    leapfrog = integrators.get("leapfrog")
    rng = np.random.default_rng(0)
    state = lambda b: [tf.constant(rng.normal(size=(b, 4, 4, 2)), tf.float32) for _ in "qp"]  # noqa: E731

    def rollout(xla_max_batch, signature=None):
        return tf.function(lambda q, p: integrators.integrate(
            leapfrog, net, q, p, 0.1, 12, xla_max_batch=xla_max_batch), input_signature=signature)

    dynamic = [tf.TensorSpec([None, 4, 4, 2], tf.float32)] * 2
    for batch in (2, 8):
        q0, p0 = state(batch)
        want = rollout(0)(q0, p0)
        static = rollout(4)
        # A static batch picks the path when traced: compiled at 2 <= 4, plain at 8.
        assert _xla_calls(static.get_concrete_function(q0, p0)) == (1 if batch <= 4 else 0)
        for fn in (static, rollout(4, dynamic)):
            got = fn(q0, p0)
            for g, w in zip(got, want):
                np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-6)
    # An unknown batch keeps both paths and picks one per call.
    assert _xla_calls(rollout(4, dynamic).get_concrete_function()) == 1
    assert _xla_calls(rollout(0, dynamic).get_concrete_function()) == 0


@pytest.mark.parametrize("bad", [-1, True, 1.5, "4"])
def test_bad_xla_max_batch_is_an_error_naming_it(bad):
    q = tf.zeros([1, 2])
    with pytest.raises(ConfigError, match="`xla_max_batch` must be a non-negative integer") as e:
        integrators.integrate(integrators.get("leapfrog"), harmonic, q, q, 0.1, 3,
                              xla_max_batch=bad)
    assert e.value.field == "xla_max_batch"
