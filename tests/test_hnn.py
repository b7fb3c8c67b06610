"""Hamiltonian Neural Networks and the baseline MLP (hgn_tf.baselines): the properties claimed.

The HNN's field is (dH/dp, -dH/dq) of its network (finite differences); an HNN whose network is
the true H reproduces the true rollout and conserves energy to solver tolerance; after the same
short training on the same spring data, the HNN conserves its own H exactly and the true energy
far better than the baseline MLP (a negative control on a long rollout); save -> load is exact;
the task data are deterministic and their derivatives are the true field (closed forms);
the metrics match hand computations; bad arguments are one-line errors.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from hgn_tf import cli, metrics, physics
from hgn_tf.baselines import hnn, tasks
from hgn_tf.baselines.evaluate import evaluate_fields, rollout_field
from hgn_tf.errors import ConfigError, DataError


def _tiny(kind, dim=1, hidden=16, **kw):
    return hnn.build(hnn.HNNConfig(kind=kind, state_dim=2 * dim, hidden=hidden, **kw))


def test_hnn_field_is_the_symplectic_gradient_of_its_network():
    model = _tiny("hnn", dim=2, seed=3)
    x = np.random.default_rng(0).normal(size=(5, 4))
    field = model(x).numpy()
    eps = 1e-6
    grad = np.zeros_like(x)
    for i in range(4):
        step = np.zeros(4)
        step[i] = eps
        grad[:, i] = (model.energy(x + step).numpy() - model.energy(x - step).numpy()) / (2 * eps)
    np.testing.assert_allclose(field[:, :2], grad[:, 2:], atol=1e-8)  # dq/dt = dH/dp
    np.testing.assert_allclose(field[:, 2:], -grad[:, :2], atol=1e-8)  # dp/dt = -dH/dq


class _TrueHamiltonian(keras.layers.Layer):
    """The pendulum's H = 3 (1 - cos q) + p^2 as a layer [B, 2] -> [B, 1]."""

    def call(self, x):
        return (3 * (1 - tf.cos(x[:, :1])) + x[:, 1:] ** 2)


@pytest.mark.parametrize("solver,n_states,span", [("batched", 5, 20.0), ("solve_ivp", 2, 4.0)])
def test_an_hnn_with_the_true_hamiltonian_reproduces_the_truth_and_conserves_energy(
        solver, n_states, span):
    # solve_ivp calls the field once per state and stage: a shorter span keeps the test short.
    task = tasks.get_task("pendulum", eval_span=(0.0, span), eval_points=int(5 * span))
    true_h = _TrueHamiltonian(name="true_h", dtype="float64")
    model = hnn.HNN(hnn.HNNConfig(state_dim=2), network=true_h)
    scores, rollouts = evaluate_fields(task, {"hnn": hnn.field_function(model)},
                                       n_states=n_states, solver=solver)
    assert scores["hnn"]["diverged"] == 0
    assert scores["hnn"]["state_mse"] < 1e-16
    assert scores["hnn"]["energy_mse"] < 1e-18
    energy = task.energy(rollouts["hnn"])
    assert np.abs(energy - energy[:, :1]).max() < 1e-9


def test_after_the_same_training_only_the_hnn_conserves_energy_on_a_long_rollout():
    task = tasks.get_task("spring", n_train=10, eval_span=(0.0, 60.0), eval_points=120)
    data = tasks.sample_split(task, "train")
    x, dxdt = data["x"].reshape(-1, 2), data["dxdt"].reshape(-1, 2)
    fields, models = {}, {}
    for kind in ("baseline", "hnn"):
        models[kind] = _tiny(kind, hidden=32, seed=1)
        hnn.fit(models[kind], x, dxdt, steps=300, seed=1)
        fields[kind] = hnn.field_function(models[kind])
    scores, rollouts = evaluate_fields(task, fields, n_states=5, solver="batched")
    assert scores["baseline"]["energy_mse"] > 10 * scores["hnn"]["energy_mse"]
    learned = models["hnn"].energy(rollouts["hnn"].reshape(-1, 2)).numpy().reshape(5, -1)
    assert np.abs(learned - learned[:, :1]).max() < 1e-8  # its own H: exactly conserved
    true_baseline = task.energy(rollouts["baseline"])
    assert np.abs(true_baseline - true_baseline[:, :1]).max() > 1e-2


def test_save_then_load_gives_the_same_field(tmp_path):
    x = np.random.default_rng(1).normal(size=(7, 2))
    for kind in hnn.MODEL_KINDS:
        model = _tiny(kind, seed=2, weight_decay=1e-4)
        hnn.save(model, tmp_path)
        np.testing.assert_array_equal(hnn.load(tmp_path, kind)(x).numpy(), model(x).numpy())


def test_weight_decay_is_pytorch_style_l2_on_every_weight():
    model = _tiny("baseline", seed=0, weight_decay=0.5)
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    x, y = np.zeros((3, 2)), np.zeros((3, 2))  # zero input: f(x) = 0 = target, the MSE is 0
    before = [v.numpy() for v in model.trainable_variables]
    model.train_step((tf.constant(x), tf.constant(y)))
    for b, v in zip(before, model.trainable_variables):
        np.testing.assert_allclose(v.numpy(), b - 0.5 * b, atol=1e-12)  # theta -= lr * wd theta


@pytest.mark.parametrize("name", ["spring", "spring_unit", "pendulum", "damped_spring"])
def test_task_data_are_deterministic_and_their_derivatives_are_the_true_field(name):
    task = tasks.get_task(name, n_train=4)
    a, b = tasks.sample_split(task, "train"), tasks.sample_split(task, "train")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    system = task.physical_system
    q, p = a["x_clean"][..., :1], a["x_clean"][..., 1:]
    if name == "damped_spring":  # mechanical variables: q' = p / m, p' = -k q - gamma p
        expected = np.concatenate([p / system.m, -system.k * q - system.gamma * p], -1)
        can_q, can_p = system.analytic_solution(q[:, 0], p[:, 0], a["t"])
        np.testing.assert_allclose(q, can_q, atol=1e-9)
        np.testing.assert_allclose(p, np.exp(-system.gamma * a["t"])[:, None] * can_p,
                                   atol=1e-9)
    elif name.startswith("spring"):
        expected = np.concatenate([p / system.m, -system.k * q], -1)
        exact_q, exact_p = system.analytic_solution(q[:, 0], p[:, 0], a["t"])
        np.testing.assert_allclose(a["x_clean"], np.concatenate([exact_q, exact_p], -1),
                                   atol=1e-9)
    else:
        expected = np.concatenate([p / (system.m * system.l**2),
                                   -2 * system.m * system.g * system.l * np.sin(q)], -1)
    np.testing.assert_allclose(a["dxdt"], expected, rtol=1e-12, atol=1e-12)
    assert a["x"].shape == (4, task.n_points, 2)
    noise = (a["x"] - a["x_clean"]).ravel()
    assert 0.5 * task.noise_std < noise.std() < 1.5 * task.noise_std
    if name != "damped_spring":  # a conservative task: H constant along each clean trajectory
        assert np.abs(a["energy"] - a["energy"][:, :1]).max() < 1e-9


def test_the_spring_tasks_hamiltonians_are_the_official_and_the_unit_one():
    x = np.array([[0.3, -0.7]])
    assert tasks.get_task("spring").energy(x)[0] == pytest.approx(0.3**2 + 0.7**2)
    assert tasks.get_task("spring_unit").energy(x)[0] == pytest.approx((0.3**2 + 0.7**2) / 2)
    pend = tasks.get_task("pendulum").energy(x)[0]
    assert pend == pytest.approx(3 * (1 - np.cos(0.3)) + 0.7**2)


def test_nbody_task_field_is_the_systems_dynamics():
    task = tasks.get_task("two_body", n_train=2, n_points=5)
    data = tasks.sample_split(task, "train")
    system = physics.get("two_body")
    dq, dp = system.dynamics(data["x_clean"][..., :4], data["x_clean"][..., 4:], 0.0)
    np.testing.assert_allclose(data["dxdt"], np.concatenate([dq, dp], -1), rtol=1e-12)
    assert task.noise_std == 0 and np.array_equal(data["x"], data["x_clean"])


def test_official_two_body_sampler_is_random_config_of_the_official_code():
    """First-quadrant body 1 (each coordinate in [0.5, 1.5]), body 2 opposite, both on the
    circular orbit about the centre of mass scaled by ONE factor 1 + 0.05 N(0, 1)."""
    x = tasks.official_initial_states("two_body", np.random.default_rng(0), 4000)
    q1, q2, p1, p2 = x[:, 0:2], x[:, 2:4], x[:, 4:6], x[:, 6:8]
    assert (q1 >= 0.5).all() and (q1 <= 1.5).all()
    np.testing.assert_array_equal(q2, -q1)
    np.testing.assert_array_equal(p2, -p1)
    r = np.linalg.norm(q1, axis=1)
    np.testing.assert_allclose(np.sum(q1 * p1, axis=1), 0.0, atol=1e-15)  # tangential
    assert np.all(q1[:, 0] * p1[:, 1] - q1[:, 1] * p1[:, 0] > 0)  # counter-clockwise
    factor = np.linalg.norm(p1, axis=1) * 2 * np.sqrt(r)  # 1 on the circular orbit
    assert abs(factor.mean() - 1) < 0.005 and abs(factor.std() - 0.05) < 0.005
    task = tasks.get_task("two_body")
    assert task.sampler == "official" and tasks.get_task("two_body_uniform").sampler == "system"


def test_official_three_body_sampler_is_random_config_of_the_official_code():
    """An equilateral triangle of radius r in [0.9, 1.2]; each velocity component the circular
    one's times 1 + 0.2 U(-1, 1), the total momentum left as drawn."""
    n = 4000
    x = tasks.official_initial_states("three_body", np.random.default_rng(1), n)
    q, p = x[:, :6].reshape(n, 3, 2), x[:, 6:].reshape(n, 3, 2)
    r = np.linalg.norm(q, axis=-1)
    np.testing.assert_allclose(r, r[:, :1] * np.ones((1, 3)), rtol=1e-12)
    assert (r >= 0.9).all() and (r <= 1.2).all()
    np.testing.assert_allclose(q.sum(axis=1), 0.0, atol=1e-12)  # 120 degrees apart
    speed = physics.get("three_body").circular_speed(r[:, 0])
    circular = np.stack([-q[..., 1], q[..., 0]], axis=-1) / r[..., None] * speed[:, None, None]
    ok = np.abs(circular) > 0.05
    ratio = p[ok] / circular[ok] - 1
    assert np.abs(ratio).max() <= 0.2 + 1e-12
    assert abs(ratio.std() - 0.2 / np.sqrt(3)) < 0.005  # uniform, not Gaussian
    assert np.median(np.linalg.norm(p.sum(axis=1), axis=-1)) > 0.05  # not re-centred


@pytest.mark.parametrize("name", ["two_body", "three_body"])
def test_the_uniform_nbody_tasks_keep_the_systems_sampler(name):
    task = tasks.get_task(f"{name}_uniform")
    x = task.initial_states(np.random.default_rng(2), 50)
    jitter = dict(task.overrides)["velocity_jitter"]
    q0, p0 = physics.get(name, velocity_jitter=jitter).sample_initial(np.random.default_rng(2), 50)
    np.testing.assert_array_equal(x, np.concatenate([q0, p0], -1))
    # Unlike the official three-body sampler, the total momentum is removed.
    momentum = x[:, task.dim:].reshape(50, -1, 2).sum(axis=1)
    np.testing.assert_allclose(momentum, 0.0, atol=1e-12)
    with pytest.raises(DataError, match="sampler"):
        tasks.get_task("spring", sampler="official")


def test_notebook_evaluation_states_are_the_spring_and_pendulum_notebooks_draw():
    # analyze-spring / analyze-pend.ipynb: x0 = U(-0.8, 0.8)^2, then 0.2 added away from zero.
    task = tasks.get_task("spring")
    assert task.eval_sampler == "notebook" == tasks.get_task("pendulum").eval_sampler
    x0 = task.eval_initial_states(400, seed=3)
    assert x0.shape == (400, 2)
    assert np.all((np.abs(x0) >= 0.2) & (np.abs(x0) <= 1.0))
    signs = {tuple(s) for s in np.sign(x0).astype(int)}
    assert signs == {(1, 1), (1, -1), (-1, 1), (-1, -1)}  # every quadrant, no axis
    # |x| beyond 0.8 exactly where U(-0.8, 0.8) gave beyond 0.6: P = 0.25 per coordinate.
    assert np.mean(np.abs(x0) > 0.8) == pytest.approx(0.25, abs=0.04)
    np.testing.assert_array_equal(x0, task.eval_initial_states(400, seed=3))
    assert not np.allclose(x0[:15], task.eval_initial_states(15, seed=4))
    # The pendulum trains on r in [1.3, 2.3]; the notebook's states lie mostly inside that ring.
    assert np.mean(np.linalg.norm(x0, axis=1) < 1.3) > 0.9


def _notebook_random_config(name):
    """The official random_config (experiment-2body/3body/data.py) transcribed, after
    np.random.seed(i) as the notebooks call it, returned as x = (x1, y1, ..., vx1, vy1, ...)."""
    def rotate2d(p, theta):
        c, s = np.cos(theta), np.sin(theta)
        return (np.array([[c, -s], [s, c]]) @ p.reshape(2, 1)).squeeze()

    if name == "two_body":
        pos = np.random.rand(2) * (1.5 - 0.5) + 0.5
        r = np.sqrt(np.sum(pos**2))
        vel = np.flipud(pos) / (2 * r**1.5)
        vel[0] *= -1
        vel *= 1 + 5e-2 * np.random.randn()
        bodies = [(pos, vel), (-pos, -vel)]
    else:
        p1 = 2 * np.random.rand(2) - 1
        r = np.random.rand() * (1.2 - 0.9) + 0.9
        p1 *= r / np.sqrt(np.sum(p1**2))
        p2 = rotate2d(p1, theta=2 * np.pi / 3)
        p3 = rotate2d(p2, theta=2 * np.pi / 3)
        v1 = rotate2d(p1, theta=np.pi / 2) / r**1.5
        v1 = v1 * np.sqrt(np.sin(np.pi / 3) / (2 * np.cos(np.pi / 6) ** 2))
        v2 = rotate2d(v1, theta=2 * np.pi / 3)
        v3 = rotate2d(v2, theta=2 * np.pi / 3)
        v1 *= 1 + 2e-1 * (2 * np.random.rand(2) - 1)
        v2 *= 1 + 2e-1 * (2 * np.random.rand(2) - 1)
        v3 *= 1 + 2e-1 * (2 * np.random.rand(2) - 1)
        bodies = [(p1, v1), (p2, v2), (p3, v3)]
    return np.concatenate([b[0] for b in bodies] + [b[1] for b in bodies])


@pytest.mark.parametrize("name", ["two_body", "three_body"])
def test_notebook_nbody_evaluation_states_are_the_notebooks_trials(name):
    # analyze-2body / analyze-3body.ipynb: trial i = np.random.seed(i); random_config().
    task = tasks.get_task(name)
    assert task.eval_sampler == "notebook"
    saved = np.random.get_state()
    try:
        want = []
        for i in range(15):
            np.random.seed(i)
            want.append(_notebook_random_config(name))
    finally:
        np.random.set_state(saved)
    np.testing.assert_allclose(task.eval_initial_states(15, seed=0), np.stack(want),
                               rtol=1e-14, atol=1e-15)
    assert not np.allclose(task.eval_initial_states(15, seed=1), np.stack(want))


def test_task_evaluation_states_are_the_eval_splits_clean_first_states():
    task = tasks.get_task("spring", eval_sampler="task")
    want = tasks.sample_split(task, "eval", 5, seed=1)["x_clean"][:, 0]
    np.testing.assert_array_equal(task.eval_initial_states(5, seed=1), want)
    assert tasks.get_task("two_body_uniform").eval_sampler == "task"
    with pytest.raises(DataError, match="eval_sampler"):
        tasks.get_task("two_body_uniform", eval_sampler="notebook")
    with pytest.raises(DataError, match="eval_sampler"):
        tasks.get_task("damped_spring", eval_sampler="notebook")
    with pytest.raises(DataError, match="eval_sampler"):
        tasks.get_task("spring", eval_sampler="grid")


def test_the_evaluation_rolls_out_from_the_tasks_evaluation_states():
    task = tasks.get_task("spring", eval_span=(0.0, 1.0), eval_points=5)
    field = lambda x: task.field(x)  # noqa: E731  (the true field: zero error)
    scores, rollouts = evaluate_fields(task, {"truth": field}, n_states=5, seed=2,
                                       solver="batched")
    np.testing.assert_array_equal(rollouts["truth"][:, 0], task.eval_initial_states(5, seed=2))
    assert scores["truth"]["energy_mse"] < 1e-18


def test_tfds_load_returns_the_task_data(tmp_path):
    import hgn_tf.datasets  # noqa: F401
    from hgn_tf.datasets.hnn_tasks import Builder, HNNTasksConfig

    config = HNNTasksConfig(name="spring_tiny", task="spring", num_train=3, num_test=2)
    builder = Builder(config=config, data_dir=str(tmp_path))
    builder.download_and_prepare()
    got = tfds.as_numpy(builder.as_dataset(split="train", batch_size=-1))
    order = np.argsort(got["index"])
    want = tasks.sample_split(tasks.get_task("spring"), "train", 3)
    for key in ("x", "x_clean", "dxdt", "energy"):
        np.testing.assert_array_equal(got[key][order], want[key])
    assert builder.info.splits["test"].num_examples == 2


def test_trajectory_metrics_match_hand_computations():
    pred = np.zeros((2, 2, 1))
    truth = np.array([[[1.0], [3.0]], [[2.0], [0.0]]])
    np.testing.assert_allclose(metrics.state_mse(pred, truth), [5.0, 2.0])
    np.testing.assert_allclose(metrics.energy_mse([[1.0, 1.0]], [[0.0, 2.0]]), [1.0])
    values = np.arange(15.0)  # group means 1, 4, 7, 10, 13: std sqrt(18)
    assert metrics.split_standard_error(values) == pytest.approx(np.sqrt(18) / np.sqrt(5))
    with pytest.raises(DataError, match="splits"):
        metrics.split_standard_error(np.arange(7.0))


@pytest.mark.parametrize("solver,method", [("batched", "DOP853"), ("solve_ivp", "DOP853"),
                                           ("solve_ivp", "RK45")])
def test_a_diverging_field_is_counted_not_dropped(solver, method):
    times = np.linspace(0.0, 2.0, 5)
    out = rollout_field(lambda x: x**2, np.array([[1.0], [-1.0]]), times, max_steps=2000,
                        solver=solver, method=method)
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()  # x' = x^2 blows up at t = 1
    np.testing.assert_allclose(out[1, :, 0], -1 / (1 + times), rtol=1e-10)  # x = -1 / (1 + t)


def test_solve_ivp_rollout_is_scipys_on_one_state_at_a_time():
    from scipy.integrate import solve_ivp

    calls = []

    def field(x):  # the harmonic oscillator, H = (q^2 + p^2) / 2
        calls.append(x.shape)
        return np.stack([x[:, 1], -x[:, 0]], -1)

    x0, times = np.array([[1.0, 0.0], [0.0, 2.0]]), np.linspace(0.0, 3.0, 7)
    out = rollout_field(field, x0, times)
    assert set(calls) == {(1, 2)}
    exact = np.stack([np.stack([x0[:, 0] * np.cos(t) + x0[:, 1] * np.sin(t),
                                -x0[:, 0] * np.sin(t) + x0[:, 1] * np.cos(t)], -1)
                      for t in times], 1)
    np.testing.assert_allclose(out, exact, atol=1e-10)
    ref = solve_ivp(lambda t, y: field(y[None])[0], (0.0, 3.0), x0[1], method="DOP853",
                    t_eval=times, rtol=1e-12, atol=1e-12).y.T
    np.testing.assert_array_equal(out[1], ref)


def test_bad_arguments_are_named_errors(capsys):
    with pytest.raises(ConfigError, match="state_dim"):
        hnn.HNNConfig(state_dim=3)
    with pytest.raises(DataError, match="task"):
        tasks.get_task("spring2")
    assert cli.main(["baselines", "hnn", "--steps", "0", "--out", "unused"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--steps" in err[0] and "got 0" in err[0]
    with pytest.raises(ConfigError, match="solver"):
        rollout_field(lambda x: x, np.zeros((1, 2)), [0.0, 1.0], solver="odeint")
    with pytest.raises(SystemExit):  # argparse's choices
        cli.main(["baselines", "hnn", "--eval-sampler", "grid", "--out", "unused"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--eval-sampler" in err[0]
    assert cli.main(["baselines", "hnn", "--task", "two_body_uniform", "--eval-sampler",
                     "notebook", "--out", "unused"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "eval_sampler" in err[0]


def test_pixel_hnn_loss_terms_equal_their_closed_forms():
    from hgn_tf.baselines.pixel_hnn import loss_terms

    x = tf.constant([[1.0, 2.0, 0.0, 1.0], [0.0, -1.0, 3.0, 1.0]])
    x_next = tf.constant([[2.0, 2.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]])

    def encoder(v):  # z = (first two pixels)
        return v[:, :2]

    def decoder(z):  # x_hat = (z, z)
        return tf.concat([z, z], -1)

    def field(z):  # f(z) = (z_p, -z_q): the field of H = (q^2 + p^2) / 2
        return tf.stack([z[:, 1], -z[:, 0]], -1)

    terms = {k: float(v) for k, v in loss_terms(encoder, decoder, field, x, x_next).items()}
    # AE: x_hat = [1,2,1,2], [0,-1,0,-1]; errors [0,0,-1,1], [0,0,3,2] -> (0+0+1+1+0+0+9+4)/8
    assert terms["ae"] == pytest.approx(15 / 8)
    # CC: z_p - (z'_q - z_q): 2 - (2 - 1) = 1; -1 - (1 - 0) = -2 -> (1 + 4) / 2
    assert terms["cc"] == pytest.approx(5 / 2)
    # HNN: z + f(z) = [1+2, 2-1] = [3, 1]; [0-1, -1-0] = [-1, -1]; z' = [2, 2], [1, 0]
    # errors [-1, 1], [2, 1] -> (1 + 1 + 4 + 1) / 4
    assert terms["hnn"] == pytest.approx(7 / 4)


def test_pixel_hnn_weights_its_terms_and_its_schedule_sets_them():
    from hgn_tf.baselines.pixel_hnn import STAGED, PixelHNN, PixelHNNConfig, fit_schedule

    model = PixelHNN(PixelHNNConfig(pixels=8, hidden=8, weight_decay=0.0))
    rng = np.random.default_rng(0)
    x, x_next = np.float32(rng.random((12, 8))), np.float32(rng.random((12, 8)))
    model.weights_ae_cc_hnn.assign([0.5, 2.0, 0.1])
    terms = model._terms((tf.constant(x), tf.constant(x_next)))
    expected = 0.5 * terms["ae"] + 2.0 * terms["cc"] + 0.1 * terms["hnn"]
    assert float(terms["loss"]) == pytest.approx(float(expected), rel=1e-6)
    stages = fit_schedule(model, x, x_next, steps=50 * len(STAGED), schedule=STAGED,
                          batch_size=6)
    assert [s["weights"] for s in stages] == [list(w) for _, *w in STAGED]
    assert list(model.weights_ae_cc_hnn.numpy()) == list(STAGED[-1][1:])
    z = tf.constant([[0.3, -0.2]])
    with tf.GradientTape() as tape:
        tape.watch(z)
        h = model.hnn.energy(tf.cast(z, tf.float64))
    g = tape.gradient(h, z).numpy()
    np.testing.assert_allclose(model.field(z).numpy(), [[g[0, 1], -g[0, 0]]], rtol=1e-5)


def test_pixel_hnn_decays_the_hnn_only_while_its_term_is_on():
    # Under Adam a decay-only gradient drives weights to 0 at ~learning_rate per step: the
    # staged schedule's HNN-off stages once zeroed the latent field for good.
    from hgn_tf.baselines.pixel_hnn import PixelHNN, PixelHNNConfig, fit_schedule

    rng = np.random.default_rng(0)
    x, x_next = np.float32(rng.random((12, 8))), np.float32(rng.random((12, 8)))
    model = PixelHNN(PixelHNNConfig(pixels=8, hidden=8, weight_decay=1e-2))
    model(x[:1])
    before = [v.numpy().copy() for v in model.hnn.trainable_variables]
    encoder_before = model.encoder.trainable_variables[0].numpy().copy()
    fit_schedule(model, x, x_next, steps=50, schedule=((1.0, 1.0, 1.0, 0.0),), batch_size=6)
    for b, v in zip(before, model.hnn.trainable_variables):
        np.testing.assert_array_equal(v.numpy(), b)  # HNN term off: untouched
    assert not np.array_equal(model.encoder.trainable_variables[0].numpy(), encoder_before)
    fit_schedule(model, x, x_next, steps=50, schedule=((1.0, 1.0, 1.0, 0.1),), batch_size=6)
    assert any(not np.array_equal(v.numpy(), b)
               for b, v in zip(before, model.hnn.trainable_variables))
    # The decay term in closed form: wd / 2 |theta|^2 over the autoencoder, plus the HNN's while on.
    l2 = lambda vs: sum(float(np.sum(np.square(v.numpy()))) for v in vs)  # noqa: E731
    hnn_l2 = l2(model.hnn.trainable_variables)
    rest_l2 = l2(model.trainable_variables) - hnn_l2
    for w_hnn, expected in ((0.0, rest_l2), (0.1, rest_l2 + hnn_l2)):
        model.weights_ae_cc_hnn.assign([1.0, 1.0, w_hnn])
        decay = float(model._decayed_loss(tf.constant(0.0)))
        assert decay == pytest.approx(0.5 * 1e-2 * expected, rel=1e-5)


def test_pixel_hnn_reads_red_minus_green_and_rebuilds_the_frames_from_it():
    from hgn_tf.baselines.pixel_run import from_model, pendulum_frames, to_model

    frames = pendulum_frames(2, 3, seed=0)["frames"]
    x = to_model(frames)
    assert x.shape == (*frames.shape[:-1], 1)
    empty = np.all(np.abs(frames - frames[0, 0, 0, 0]) < 1e-6, axis=-1)  # corner: background
    assert empty.mean() > 0.9
    np.testing.assert_array_equal(x[empty], 0.0)  # an empty pixel reads 0
    assert x[~empty].max() > 0.5  # the bob's centre does not
    np.testing.assert_allclose(from_model(x), frames, atol=2.5 / 255)  # uint8 rounding only
    np.testing.assert_allclose(from_model(x + 5), from_model(np.ones_like(x)))  # coverage <= 1


def test_pixel_hnn_input_is_the_frame_and_its_difference_with_the_last():
    from hgn_tf.baselines.pixel_run import inputs

    frames = np.arange(2 * 3 * 2 * 2 * 3, dtype=np.float32).reshape(2, 3, 2, 2, 3) ** 2
    x = inputs(frames)
    assert x.shape == (2, 2, 24)
    np.testing.assert_array_equal(x[1, 0, :12], frames[1, 1].ravel())
    np.testing.assert_array_equal(x[1, 0, 12:], (frames[1, 1] - frames[1, 0]).ravel())
    np.testing.assert_array_equal(x[0, 1, 12:], (frames[0, 2] - frames[0, 1]).ravel())


def test_pixel_hnn_small_swings_follow_the_official_gym_protocol():
    from hgn_tf.baselines.pixel_run import pendulum_frames
    from hgn_tf.errors import ConfigError
    from hgn_tf.physics import get

    d = pendulum_frames(32, 2, max_angle=np.pi / 6)
    assert np.abs(d["q"][:, 0]).max() <= np.pi / 6
    qdot = get("pendulum").dynamics(d["q"][:, 0], d["p"][:, 0], 0.0)[0]  # dH/dp
    assert np.abs(qdot).max() <= 1.0 and np.abs(qdot).max() > 0.5
    wide = pendulum_frames(32, 2)  # HGN's states swing much further
    assert np.abs(wide["q"][:, 0]).max() > 1.0
    with pytest.raises(ConfigError, match="max_angle"):
        pendulum_frames(2, 2, max_angle=0.0)


def test_pixel_hnn_command_trains_and_scores_latent_orbits(tmp_path, capsys, monkeypatch):
    rc = cli.main(["baselines", "pixel-hnn", "--schedule", "official", "--steps", "50",
                   "--out", str(tmp_path)])
    assert rc == 0
    import json

    result = json.loads((tmp_path / "metrics.json").read_text())
    assert result["diverged"] == 0
    assert result["latent_h_drift"]["mean"] < 1e-6  # the learned H is conserved by its field
    assert result["true_energy_drift_readback_floor"]["mean"] < 0.02  # the read-back works
    assert result["true_energy_error_readback_floor"]["mean"] < 0.02
    for name in ("latent.png", "energy.png", "rollout.png", "pixel_hnn.weights.h5"):
        assert (tmp_path / name).stat().st_size > 0
    # A rerun with the same settings scores the trained model again instead of retraining it.
    from hgn_tf.baselines import pixel_run

    def no_training(*args, **kwargs):
        raise AssertionError("retrained")

    monkeypatch.setattr(pixel_run, "fit_schedule", no_training)
    assert cli.main(["baselines", "pixel-hnn", "--schedule", "official", "--steps", "50",
                     "--out", str(tmp_path)]) == 0
    again = json.loads((tmp_path / "metrics.json").read_text())
    assert again["pixel_mse_30_x1e4"] == pytest.approx(result["pixel_mse_30_x1e4"], rel=1e-5)
    with pytest.raises(AssertionError, match="retrained"):  # other settings: trained anew
        cli.main(["baselines", "pixel-hnn", "--schedule", "official", "--steps", "100",
                  "--out", str(tmp_path)])


def test_energy_ratio_error_bar_is_first_order_propagation():
    from hgn_tf.baselines.run import energy_ratio

    r, se = energy_ratio({"energy_mse": 6e-3, "energy_mse_se": 3e-4},
                         {"energy_mse": 2e-5, "energy_mse_se": 2e-6})
    assert r == pytest.approx(300.0)
    assert se == pytest.approx(300.0 * np.sqrt(0.05 ** 2 + 0.1 ** 2))
    assert energy_ratio({"energy_mse": 1.0, "energy_mse_se": 0.1},
                        {"energy_mse": 0.0, "energy_mse_se": 0.0})[0] == np.inf


def test_a_killed_hnn_run_resumes_from_the_models_it_finished(tmp_path, monkeypatch):
    from hgn_tf.baselines import run
    from hgn_tf.baselines.tasks import get_task

    rng = np.random.default_rng(0)
    points = lambda n: (rng.normal(size=(n, 2)), rng.normal(size=(n, 2)))  # noqa: E731
    monkeypatch.setattr(run, "load_task_data", lambda name, data_dir: {
        "train": points(32), "test": points(8)})
    monkeypatch.setattr(run, "evaluate_fields", lambda task, fields, **kw: (
        {k: {"energy_mse": float(np.abs(f(np.ones((1, 2)))).sum())} for k, f in fields.items()},
        {}))
    monkeypatch.setattr(run, "_pictures", lambda *a: None)
    fitted = []
    real_fit = run.hnn.fit
    monkeypatch.setattr(run.hnn, "fit", lambda model, *a, **kw: (
        fitted.append(model.config.kind), real_fit(model, *a, **kw))[1])

    task = get_task("spring", steps=3)
    first = run._run_task(task, tmp_path, None, 0, False)
    assert fitted == ["baseline", "hnn"]
    # Killed after the baseline finished: its marker is there, the HNN's is not.
    (tmp_path / "hnn_trained.json").unlink()
    second = run._run_task(task, tmp_path, None, 0, False)
    assert fitted == ["baseline", "hnn", "hnn"]
    assert second["scores"]["baseline"] == first["scores"]["baseline"]  # the same weights
    assert second["baseline_curves"] == first["baseline_curves"]
    # Other settings: both are trained again.
    run._run_task(get_task("spring", steps=4), tmp_path, None, 0, False)
    assert fitted == ["baseline", "hnn", "hnn", "baseline", "hnn"]


def test_the_hnn_table_names_each_rows_evaluation_states(tmp_path):
    from hgn_tf.baselines import run

    score = {"energy_mse": 2e-2, "energy_mse_se": 1e-3, "state_mse": 0.5}
    for name, sampler in (("spring", "notebook"), ("two_body_uniform", "task")):
        (tmp_path / name).mkdir()
        record = {"scores": {"baseline": score, "hnn": dict(score, energy_mse=1e-4)},
                  "steps": 3, "baseline_train_s": 1.0, "hnn_train_s": 2.0,
                  "eval_sampler": sampler}
        (tmp_path / name / "metrics.json").write_text(json.dumps(record))
    rows = run.write_table(tmp_path).read_text().splitlines()
    assert rows[0].startswith("| task | evaluation states |")
    assert rows[2].startswith("| spring | notebook | 2.00e-02 ± 1.0e-03 | 1.00e-04 ± 1.0e-03 "
                              "| 200x")
    assert rows[3].startswith("| two_body_uniform | task |")
    assert len(rows) == 4
