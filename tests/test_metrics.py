"""The shared measures, on hand-made inputs whose answers are known."""

import numpy as np
import pytest

from hgn_tf import metrics
from hgn_tf.errors import DataError


def _frames(values):
    """[N, T] values -> frames [N, T, 2, 2, 3] filled with each value."""
    v = np.asarray(values, np.float64)
    return np.broadcast_to(v[:, :, None, None, None], (*v.shape, 2, 2, 3)).copy()


def test_per_frame_and_sequence_mse():
    truth = _frames([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    pred = _frames([[0.0, 0.1, 0.2], [1.0, 1.0, 0.5]])
    np.testing.assert_allclose(metrics.per_frame_mse(pred, truth),
                               [[0.0, 0.01, 0.04], [0.0, 0.0, 0.25]])
    np.testing.assert_allclose(metrics.sequence_mse(pred, truth), [0.05 / 3, 0.25 / 3])
    np.testing.assert_allclose(metrics.sequence_mse(pred, truth, slice(0, 2)), [0.005, 0.0])
    np.testing.assert_allclose(metrics.sequence_mse(pred, truth, slice(2, None)), [0.04, 0.25])
    with pytest.raises(DataError) as e:
        metrics.sequence_mse(pred, truth, slice(3, None))
    assert e.value.field == "window"
    with pytest.raises(DataError, match="same shape"):
        metrics.per_frame_mse(pred[:, :2], truth)
    with pytest.raises(DataError, match=r"\[N, T, H, W, C\]"):
        metrics.per_frame_mse(pred[0], truth[0])


def test_baselines():
    truth = _frames([[0.2, 0.4, 0.6]])
    # The mean frame 0.4 everywhere: errors 0.04, 0, 0.04.
    np.testing.assert_allclose(metrics.mean_frame_mse(truth, np.full((2, 2, 3), 0.4)),
                               [0.08 / 3])
    # Repeating frame 1 (0.4) over frames 1..2: errors 0, 0.04.
    np.testing.assert_allclose(metrics.repeat_frame_mse(truth, 1, slice(1, None)), [0.02])
    np.testing.assert_allclose(metrics.repeat_frame_mse(truth, 0), [(0 + 0.04 + 0.16) / 3])
    with pytest.raises(DataError, match="anchor"):
        metrics.repeat_frame_mse(truth, 3)


def test_valid_prediction_time():
    truth = _frames([[0.5] * 5, [0.5] * 5, [0.5] * 5])
    # power 0.25: a frame is invalid when its MSE > 0.025 * 0.25 = 0.00625, i.e. |error| > 0.079.
    pred = _frames([[0.5, 0.5, 0.6, 0.5, 0.5],     # first invalid at frame 2
                    [0.5, 0.55, 0.57, 0.5, 0.5],   # never invalid (errors <= 0.07)
                    [0.9, 0.5, 0.5, 0.5, 0.5]])    # invalid at once
    np.testing.assert_array_equal(metrics.valid_prediction_time(pred, truth), [2, 5, 0])


def test_energy_variance_and_drift():
    energy = np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0], [2.0, 1.0, 2.0]])
    np.testing.assert_allclose(metrics.energy_variance(energy), [0.0, 2 / 3, 2 / 9])
    np.testing.assert_allclose(metrics.energy_drift(energy), [0.0, 2.0, 1.0])
    np.testing.assert_allclose(metrics.energy_drift(energy, scale=2.0), [0.0, 1.0, 0.5])
    with pytest.raises(DataError, match="scale"):
        metrics.energy_drift(energy, scale=0.0)
    with pytest.raises(DataError, match=r"\[N, T\]"):
        metrics.energy_variance(energy[0])


def test_summary_and_window_report():
    assert metrics.summary([1.0, 2.0, 6.0]) == {
        "mean": 3.0, "std": pytest.approx(np.std([1, 2, 6])), "median": 2.0, "n": 3}
    with pytest.raises(DataError):
        metrics.summary([])
    truth = _frames([[0.2, 0.4, 0.6], [0.2, 0.4, 0.6]])
    pred = _frames([[0.2, 0.4, 0.5], [0.2, 0.4, 0.7]])
    errors = metrics.frame_errors(pred, truth, mean_frame=np.full((2, 2, 3), 0.4), anchor=1)
    np.testing.assert_allclose(errors["model"], [[0, 0, 0.01], [0, 0, 0.01]], atol=1e-12)
    np.testing.assert_allclose(errors["mean_frame"], [[0.04, 0, 0.04]] * 2, atol=1e-7)
    np.testing.assert_allclose(errors["repeat_last"], [[0.04, 0, 0.04]] * 2, atol=1e-7)
    report = metrics.window_report(errors, slice(2, None))
    assert report["n_frames"] == 1
    assert report["pixel_mse"] == pytest.approx(0.01) and report["pixel_mse_std"] == 0
    assert report["baseline_mean_frame_mse"] == pytest.approx(0.04)
    assert report["baseline_repeat_last_mse"] == pytest.approx(0.04)
    assert report["ratio_to_mean_frame"] == pytest.approx(0.25)
    whole = metrics.window_report(errors)
    assert whole["n_frames"] == 3 and whole["pixel_mse"] == pytest.approx(0.01 / 3)
    with pytest.raises(DataError, match="anchor"):
        metrics.frame_errors(pred, truth, mean_frame=np.zeros((2, 2, 3)), anchor=5)
    # VPT from precomputed errors equals VPT from the frames.
    np.testing.assert_array_equal(
        metrics.valid_prediction_time(pred, truth, errors=errors["model"]),
        metrics.valid_prediction_time(pred, truth))
