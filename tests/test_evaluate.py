"""`hgn evaluate`: a 30-frame unroll of a short-sequence model, split at the frames it read."""

import json

import cv2
import numpy as np
import pytest

from hgn_tf import cli
from hgn_tf.errors import ConfigError
from hgn_tf.evaluate import evaluate, format_table
from hgn_tf.train import train


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_data_dir):
    from hgn_tf import config as C

    run = tmp_path_factory.mktemp("eval") / "run"
    cfg = C.tiny("pendulum").replace(data=dict(data_dir=tiny_data_dir))
    train(cfg, run, verbose=0)
    return run


def test_evaluate_scores_the_frames_read_and_the_frames_after(tiny_run):
    m = evaluate(tiny_run, horizon=10, max_sequences=8, verbose=False)
    assert (m["horizon"], m["frames_read"], m["trained_frames"]) == (10, 4, 4)
    for split in ("train", "test"):
        s = m[split]
        assert len(s["per_step_mse"]) == 10
        assert s["read"]["n_frames"] == 4 and s["after"]["n_frames"] == 6
        # The whole unroll is the frame-weighted mean of its two windows.
        assert s["pixel_mse"] == pytest.approx(
            (4 * s["read"]["pixel_mse"] + 6 * s["after"]["pixel_mse"]) / 10)
        assert np.mean(s["per_step_mse"][:4]) == pytest.approx(s["read"]["pixel_mse"])
        assert 0 <= s["vpt_median"] <= 10 and "hamiltonian_variance" in s
    on_disk = json.loads((tiny_run / "eval" / "metrics.json").read_text())
    assert on_disk["test"]["after"] == m["test"]["after"]
    # Physics read back from the frames: the clean states rendered are read where they are, the
    # stored (noisy) frames ~1 pixel off them (pendulum noise std 0.1); the model's are scored.
    for split in ("train", "test"):
        physics = on_disk[split]["physics"]
        assert physics["clean"]["found_fraction"] == 1
        assert physics["clean"]["position_error_px"] < 0.01
        assert 0.3 < physics["truth"]["position_error_px"] < 2
        assert 0 <= physics["model"]["found_fraction"] <= 1
    assert 0 <= on_disk["samples"]["physics"]["found_fraction"] <= 1
    assert "E_rel_var" in format_table(m) and "samples" in format_table(m)
    video = cv2.VideoCapture(str(tiny_run / "eval" / "rollout_vs_truth.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 10
    assert (tiny_run / "eval" / "rollout_vs_truth.gif").exists()


def test_horizon_must_cover_the_frames_read_and_fit_the_data(tiny_run, capsys):
    with pytest.raises(ConfigError, match="`horizon`.*at least the 4 frames") as e:
        evaluate(tiny_run, horizon=3, pictures=False, verbose=False)
    assert e.value.field == "horizon"
    assert cli.main(["evaluate", "--run-dir", str(tiny_run), "--horizon", "31"]) == 2
    assert "`horizon` must be at most 30" in capsys.readouterr().err


def test_the_prediction_floor_scores_the_best_prediction_beside_the_model(tiny_run, capsys,
                                                                           monkeypatch):
    from PIL import Image

    m = evaluate(tiny_run, horizon=10, max_sequences=8, verbose=False, prediction_floor=True)
    for split in ("train", "test"):
        floor = m[split]["prediction_floor"]
        # It copies the 4 frames read and predicts 6; a 40-step model is far above it after them.
        assert floor["read"]["pixel_mse"] == 0 and floor["after"]["n_frames"] == 6
        assert 0 < floor["after"]["pixel_mse"] < m[split]["after"]["pixel_mse"]
    assert "floor" in format_table(m)
    # The picture gains four rows: truth, model, floor.
    height = Image.open(tiny_run / "eval" / "rollout_vs_truth.png").size[1]
    evaluate(tiny_run, horizon=10, max_sequences=8, verbose=False)
    assert Image.open(tiny_run / "eval" / "rollout_vs_truth.png").size[1] == pytest.approx(
        height * 8 / 12, abs=2)
    # Nothing to predict, or a system that does not say how it draws its initial states: errors
    # that name the option.
    with pytest.raises(ConfigError) as e:
        evaluate(tiny_run, horizon=4, pictures=False, verbose=False, prediction_floor=True)
    assert e.value.field == "prediction_floor"
    assert cli.main(["evaluate", "--run-dir", str(tiny_run), "--horizon", "4",
                     "--prediction-floor"]) == 2
    assert "--prediction-floor" in capsys.readouterr().err
    from hgn_tf import physics
    from hgn_tf.evaluate import prediction_floor_frames

    monkeypatch.setattr(physics.get("two_body").__class__, "initial_parametrisation",
                        lambda self: None)
    with pytest.raises(ConfigError, match="initial_parametrisation") as e:
        prediction_floor_frames("two_body", np.zeros((2, 6, 4)), np.arange(6.0), 4, resolution=32)
    assert e.value.field == "prediction_floor"


def test_an_equal_floor_request_is_answered_from_the_last_two_computed(monkeypatch):
    import collections

    from hgn_tf import evaluate as evaluate_mod
    from hgn_tf.physics import inference

    monkeypatch.setattr(evaluate_mod, "_FLOOR_CACHE", collections.OrderedDict())
    calls = []
    real = inference.posterior_frames
    monkeypatch.setattr(inference, "posterior_frames",
                        lambda *a, **kw: calls.append(kw["seed"]) or real(*a, **kw))
    rng = np.random.default_rng(0)
    q = rng.normal(0.0, 0.3, size=(2, 6, 1))
    times = np.arange(6.0) * 0.1
    floor = lambda q, seed=0: evaluate_mod.prediction_floor_frames(  # noqa: E731
        "pendulum", q, times, 3, resolution=32, n_samples=4, seed=seed)
    first = floor(q)
    again = floor(q.copy())  # equal values in another array: not computed again
    assert calls == [0] and again is first
    with pytest.raises(ValueError):  # what callers share cannot be written over
        first["frames"][0, 0, 0, 0, 0] = 1.0
    floor(q, seed=1)
    floor(q + 0.01)  # other values: computed; the oldest (seed 0, q) is dropped
    assert calls == [0, 1, 0]
    other = floor(q.copy())
    assert calls == [0, 1, 0, 0] and other is not first
    np.testing.assert_array_equal(other["frames"], first["frames"])  # a pure function


def test_draws_score_the_predictive_mean_of_posterior_draws(tiny_run, capsys):
    base = evaluate(tiny_run, horizon=6, max_sequences=8, pictures=False, verbose=False)
    assert base["posterior_draws"] == 0
    m = evaluate(tiny_run, horizon=6, max_sequences=8, pictures=False, verbose=False, draws=4)
    assert m["posterior_draws"] == 4
    again = evaluate(tiny_run, horizon=6, max_sequences=8, pictures=False, verbose=False,
                     draws=4)
    assert again["test"]["per_step_mse"] == m["test"]["per_step_mse"]  # seeded draws
    assert m["test"]["per_step_mse"] != base["test"]["per_step_mse"]
    zero = evaluate(tiny_run, horizon=6, max_sequences=8, pictures=False, verbose=False,
                    draws=0)
    assert zero["test"]["per_step_mse"] == base["test"]["per_step_mse"]  # the posterior mean
    assert cli.main(["evaluate", "--run-dir", str(tiny_run), "--draws", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--draws -1: " in err, err


def test_fit_prior_and_evaluate_prior_learned_from_the_command_line(tiny_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    # --prior takes standard or learned: anything else is a one-line error naming the flag.
    with pytest.raises(SystemExit) as e:  # argparse's choices
        cli.main(["evaluate", "--run-dir", str(run), "--prior", "gaussian"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--prior" in err and "gaussian" in err, err
    # learned, before a prior was fitted: one line naming the flag and the fix.
    assert cli.main(["evaluate", "--run-dir", str(run), "--prior", "learned"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hgn evaluate: error: --prior learned")
    assert "hgn fit-prior" in err
    assert cli.main(["fit-prior", "--run-dir", str(run), "--components", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--components 0" in err, err
    assert cli.main(["fit-prior", "--run-dir", str(run), "--pca-dim", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--pca-dim -1" in err, err
    assert cli.main(["fit-prior", "--run-dir", str(run), "--components", "2",
                     "--pca-dim", "4"]) == 0
    assert "held out" in capsys.readouterr().out
    assert (run / "prior.json").exists() and (run / "prior.weights.h5").exists()
    assert cli.main(["evaluate", "--run-dir", str(run), "--horizon", "6", "--max-sequences",
                     "4", "--prior", "learned"]) == 0
    on_disk = json.loads((run / "eval" / "metrics.json").read_text())
    assert on_disk["samples"]["prior"] == "learned"
    assert 0 <= on_disk["samples"]["physics"]["found_fraction"] <= 1
    assert (run / "eval" / "samples_learned.png").exists()
