"""HNN-conv (hgn_tf.baselines.hnn_conv): the properties claimed.

Its field is (dH/dp, -dH/dq) of its MLP (finite differences); the loss terms equal their closed
forms on a hand-made batch; a short fit lowers the loss; save -> load is exact; the rollout
follows the leapfrog integrator; the command trains, scores and writes its files on tiny data,
and rejects bad values with a one-line error naming the flag.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from hgn_tf import cli, integrators
from hgn_tf.baselines import hnn_conv
from hgn_tf.baselines.hnn_conv_run import PRESETS
from hgn_tf.errors import ConfigError


def _tiny(latent_dim=4, seed=0, **kw):
    return hnn_conv.HNNConv(hnn_conv.HNNConvConfig(latent_dim=latent_dim, seed=seed,
                                                   **{**PRESETS["tiny"], **kw}))


def _frames(n, t, seed=0):
    return np.random.default_rng(seed).random((n, t, 32, 32, 3)).astype(np.float32)


def test_field_is_the_symplectic_gradient_of_its_mlp():
    model = _tiny(latent_dim=4, seed=3)
    z = np.random.default_rng(0).normal(size=(5, 4))
    field = model.field(tf.constant(z)).numpy()
    eps, grad = 1e-6, np.zeros_like(z)
    for i in range(4):
        step = np.zeros(4)
        step[i] = eps
        grad[:, i] = (model.hnn.energy(z + step).numpy()
                      - model.hnn.energy(z - step).numpy()) / (2 * eps)
    np.testing.assert_allclose(field[:, :2], grad[:, 2:], atol=1e-8)  # dq/dt = dH/dp
    np.testing.assert_allclose(field[:, 2:], -grad[:, :2], atol=1e-8)  # dp/dt = -dH/dq


def test_loss_terms_equal_their_closed_forms():
    # Frames of 1 x 1 pixel, 2 channels: the encoder reads z = (frame t, channel 0 and 1).
    window = tf.constant([[[[[1.0, 2.0]]], [[[0.0, 1.0]]], [[[3.0, 3.0]]]],
                          [[[[0.0, -1.0]]], [[[2.0, 0.0]]], [[[1.0, 1.0]]]]])

    def encode(pair):
        return pair[:, 0, 0, 0, :]

    def decode(z):  # x_hat = (q, q)
        return tf.stack([z[:, 0], z[:, 0]], -1)[:, None, None, :]

    def field(z):  # (p, -q): H = (q^2 + p^2) / 2
        return tf.stack([z[:, 1], -z[:, 0]], -1)

    terms = {k: float(v) for k, v in hnn_conv.loss_terms(encode, decode, field, window).items()}
    # z = [1, 2], [0, -1]; z' = [0, 1], [2, 0]
    # AE: x_t = [1, 2], [0, -1]; x_hat = [1, 1], [0, 0] -> (0 + 1 + 0 + 1) / 4
    assert terms["ae"] == pytest.approx(0.5)
    # CC: p - (q' - q) = 2 - (0 - 1) = 3; -1 - (2 - 0) = -3 -> (9 + 9) / 2
    assert terms["cc"] == pytest.approx(9.0)
    # HNN: z + f(z) = [3, 1], [-1, -1]; z' - that = [-3, 0], [3, 1] -> (9 + 0 + 9 + 1) / 4
    assert terms["hnn"] == pytest.approx(19 / 4)


def test_rollout_is_the_leapfrog_of_the_learned_h_and_decodes_every_frame():
    model = _tiny(latent_dim=2, seed=1, substeps=4)
    frames = tf.constant(_frames(2, 2))
    out = model.rollout(frames, 6)
    assert out["frames"].shape == (2, 6, 32, 32, 3) and out["z"].shape == (2, 6, 2)
    z0 = tf.cast(model.encode(frames), tf.float64)
    qs, ps = integrators.integrate(integrators.get("leapfrog"), model.hamiltonian,
                                   z0[:, :1], z0[:, 1:], 0.25, 20)
    np.testing.assert_allclose(out["z"].numpy()[:, :, 0], qs.numpy()[::4, :, 0].T, atol=1e-12)
    np.testing.assert_allclose(out["z"].numpy()[:, :, 1], ps.numpy()[::4, :, 0].T, atol=1e-12)
    np.testing.assert_allclose(out["frames"].numpy()[:, 3],
                               model.decode(out["z"][:, 3]).numpy(), atol=1e-6)
    np.testing.assert_allclose(out["energy"].numpy(),
                               model.hnn.energy(tf.reshape(out["z"], [-1, 2])).numpy().reshape(
                                   2, 6), atol=1e-12)


def test_a_short_fit_lowers_the_loss():
    model = _tiny(latent_dim=2, seed=0)
    # Smooth frames: a bright square moving one pixel a frame.
    frames = np.zeros((4, 3, 32, 32, 3), np.float32)
    for i in range(4):
        for t in range(3):
            frames[i, t, 8 + 2 * i : 16 + 2 * i, 4 + 4 * i + t : 12 + 4 * i + t] = 1.0
    before = float(model._terms(tf.constant(frames))["loss"])
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(tf.data.Dataset.from_tensors(frames).repeat(), epochs=1, steps_per_epoch=30,
              verbose=0, shuffle=False)
    after = float(model._terms(tf.constant(frames))["loss"])
    assert after < 0.7 * before


def test_save_then_load_gives_equal_outputs(tmp_path):
    model = _tiny(latent_dim=4, seed=2, substeps=2)
    hnn_conv.save(model, tmp_path)
    loaded = hnn_conv.load(tmp_path)
    frames = tf.constant(_frames(2, 2, seed=1))
    want, got = model.rollout(frames, 3), loaded.rollout(frames, 3)
    for key in ("frames", "z", "energy"):
        np.testing.assert_array_equal(got[key].numpy(), want[key].numpy())
    assert loaded.config == model.config
    with pytest.raises(ConfigError, match="folder"):
        hnn_conv.load(tmp_path / "missing")


def test_latent_sizes_are_the_papers():
    assert [hnn_conv.latent_dim(s) for s in ("mass_spring", "pendulum", "two_body",
                                             "three_body")] == [2, 2, 8, 12]
    with pytest.raises(ConfigError, match="latent_dim"):
        hnn_conv.HNNConvConfig(latent_dim=3)


@pytest.mark.parametrize("flag,value", [("--steps", "0"), ("--batch-size", "-1"),
                                        ("--eval-sequences", "0"), ("--learning-rate", "-1"),
                                        ("--max-examples", "0")])
def test_the_command_rejects_bad_values_naming_the_flag(flag, value, tmp_path, capsys):
    assert cli.main(["baselines", "hnn-conv", flag, value, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and flag in err[0] and value in err[0]


@pytest.mark.slow
def test_the_command_trains_scores_and_writes_its_files(tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    rc = cli.main(["baselines", "hnn-conv", "--system", "pendulum", "--preset", "tiny",
                   "--steps", "4", "--batch-size", "4", "--max-examples", "16",
                   "--eval-sequences", "3", "--data-dir", tiny_data_dir, "--out", str(out)])
    assert rc == 0
    result = json.loads((out / "metrics.json").read_text())
    for split in ("train", "test"):
        r = result[split]
        assert len(r["per_step_mse"]) == 30 and r["n_sequences"] == 3
        assert r["read"]["n_frames"] == 2 and r["after"]["n_frames"] == 28
        assert 0 < r["pixel_mse"] < 1 and r["baseline_mean_frame_mse"] > 0
    assert len(result["curves"]["loss"]) == 1
    for name in ("rollout_vs_truth.png", "per_step_mse.png", "table.md",
                 "model/hnn_conv.weights.h5"):
        assert (out / name).stat().st_size > 0
    assert "| pendulum | 4 |" in (out / "table.md").read_text()
