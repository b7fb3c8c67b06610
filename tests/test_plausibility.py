"""Physical plausibility of frame sequences (hgn_tf.plausibility)."""

import numpy as np
import pytest

from hgn_tf import physics, plausibility
from hgn_tf.errors import DataError
from hgn_tf.physics import readback, render, render_states


def _scores(system, frames, true_q=None):
    state = readback.read_state(frames, system, 0.125)
    return plausibility.sequence_scores(state, system, frames.shape[-2], true_q)


def test_energy_scores_on_hand_made_energies():
    energy = np.array([[2.0, 2.0, 2.0, 2.0],       # constant: no variance, no drift
                       [1.0, 3.0, 1.0, 3.0],       # mean 2, var 1
                       [1.0, 1.0, 3.0, 3.0],       # first quarter 1, last 3: drift 2 / 2
                       [1.0, np.nan, 1.0, 1.0]])   # a frame without a body: no score
    np.testing.assert_allclose(plausibility.energy_rel_var(energy), [0, 0.25, 0.25, np.nan])
    np.testing.assert_allclose(plausibility.energy_rel_drift(energy), [0, 1.0, 1.0, np.nan])
    with pytest.raises(DataError) as e:
        plausibility.energy_rel_var(np.zeros(5))
    assert e.value.field == "energy"


@pytest.fixture(scope="module")
def two_body():
    system = physics.get("two_body")
    data = physics.generate(system, 6, seed=0, split="test")
    return system, data


def test_true_sequences_are_plausible_and_their_position_error_is_tiny(two_body):
    system, data = two_body
    scores = _scores(system, render_states(system, data["q"]), data["q"])
    assert np.all(plausibility.plausible(scores))
    assert np.all(scores["found_fraction"] == 1)
    assert scores["position_error_px"].max() < 0.01


def test_a_shifted_picture_has_the_shift_as_position_error(two_body):
    # Every disc drawn one pixel to the right of the truth: an error of exactly one pixel.
    system, data = two_body
    pixel = 2 * system.world_extent / 32
    shifted = system.coordinates(system.positions(data["q"]) + np.array([pixel, 0.0]))
    scores = _scores(system, render_states(system, shifted), data["q"])
    np.testing.assert_allclose(scores["position_error_px"], 1.0, atol=0.01)


def test_a_teleporting_body_is_implausible(two_body):
    # Body 1 jumps by 1/4 of the canvas at frame 15 and stays there: positions are still found,
    # but the velocity spike breaks energy conservation.
    system, data = two_body
    q = data["q"].astype(np.float64).copy()
    q[:, 15:, 2] += system.world_extent / 4
    scores = _scores(system, render_states(system, q))
    assert np.all(scores["found_fraction"] == 1)
    assert np.all(scores["energy_rel_var"] > 10 * plausibility.ENERGY_REL_VAR_TOLERANCE)
    assert not np.any(plausibility.plausible(scores))


def test_a_vanishing_body_is_implausible(two_body):
    # Body 1 is missing from frames 10-12 (only body 0 is drawn there).
    system, data = two_body
    frames = render_states(system, data["q"])
    positions = system.positions(data["q"][:, 10:13].astype(np.float64))
    frames[:, 10:13] = render(positions[..., :1, :], extent=system.world_extent,
                              body_radius=system.body_radius, colours=system.colours[:1])
    scores = _scores(system, frames)
    np.testing.assert_allclose(scores["found_fraction"], 27 / 30)
    assert np.all(np.isnan(scores["energy_rel_var"]))  # no trajectory to differentiate
    assert not np.any(plausibility.plausible(scores))
    report = plausibility.summarise(scores)
    assert report["energy_sequences"] == 0 and report["energy_rel_var"] is None


def test_a_fading_pendulum_is_not_found_and_a_still_one_has_no_energy_change():
    # What the issue saw in samples: a blob fading into the background within a few frames.
    system = physics.get("pendulum")
    data = physics.generate(system, 4, seed=0, split="test")
    frames = render_states(system, data["q"]).astype(np.float32) / 255
    background = np.rint(0.3 * 255) / 255
    fade = np.clip(1 - np.arange(30) / 5, 0, 1)[None, :, None, None, None]  # 1, .8, .6, .4, ...
    report = plausibility.physics_report(background + fade * (frames - background), system, 0.125,
                                         true_q=data["q"])
    assert report["found_fraction"] == pytest.approx(3 / 30) and report["plausible_fraction"] == 0
    report = plausibility.physics_report(np.repeat(frames[:, :1], 30, axis=1), system, 0.125)
    assert report["found_fraction"] == 1 and report["energy_rel_drift"] < 1e-6
    assert "position_error_px" not in report and report["constraint_residual"] < 0.01


def test_physics_report_of_ground_truth_frames(two_body):
    system, data = two_body
    report = plausibility.physics_report(data["frames"], system, 0.125, true_q=data["q"])
    assert report["n_sequences"] == 6 and report["found_fraction"] == 1
    # Rendered from noisy states (std 0.05): ~0.4 pixel from the clean ones, and the noise,
    # differentiated, makes the energy read back vary far beyond the tolerance.
    assert 0.2 < report["position_error_px"] < 0.8
    assert report["energy_rel_var_median"] > plausibility.ENERGY_REL_VAR_TOLERANCE
    with pytest.raises(DataError) as e:
        plausibility.plausible({"energy_rel_var": [0.0], "found_fraction": [1.0]}, tolerance=0)
    assert e.value.field == "tolerance"


def test_tracks_are_drawn_where_the_bodies_are(tmp_path):
    # The cross of each body sits at its centre read back: on the disc, in the track colour.
    from PIL import Image

    from hgn_tf import plots
    from hgn_tf.physics import project

    system = physics.get("three_body")
    data = physics.generate(system, 2, seed=0, split="test", n_frames=5)
    tracks, _ = plausibility.write_pictures(data["frames"], system, 0.125, tmp_path, "three",
                                            true_energy=data["energy"],
                                            reference_frames=data["frames"][:1])
    image = np.asarray(Image.open(tracks))
    centres = project(system.positions(data["q_noisy"]), system.world_extent, 32)
    scale, gap, left = 4, 1, 70
    for i, j, b in ((0, 0, 0), (1, 4, 2), (1, 2, 1)):
        col, row = centres[i, j, b] * scale
        x = int(left + gap + j * (32 * scale + gap) + col)
        y = int(gap + i * (32 * scale + gap) + row)
        assert tuple(image[y, x]) == plots.TRACK_COLOURS[b], (i, j, b, image[y, x])
    assert (tmp_path / "three_energy.png").stat().st_size > 0


def test_hgn_data_physics_scores_and_draws_a_dataset(tiny_data_dir, tmp_path, capsys):
    from hgn_tf import cli

    out = tmp_path / "physics"
    assert cli.main(["data", "physics", "pendulum", "--data-dir", tiny_data_dir,
                     "--max-examples", "16", "--n", "8", "--show", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    clean = next(line for line in printed.splitlines() if line.startswith("clean"))
    assert clean.split()[1] == "1.000" and clean.split()[-1] == "1.000"  # found, plausible
    for label in ("stored", "clean"):
        for kind in ("tracks", "energy"):
            assert (out / f"pendulum_test_{label}_{kind}.png").exists()
    assert cli.main(["data", "physics", "pendulum", "--data-dir", tiny_data_dir, "--n", "0"]) == 2
    assert "`--n` must be a positive integer" in capsys.readouterr().err


def test_blank_rollouts_score_and_draw_without_warnings(two_body, tmp_path):
    # A model that draws nothing: no body found, no energy, no position; scored and drawn, not
    # crashed (`make demo`'s first evaluation of a barely trained model is such a rollout).
    import warnings

    system, data = two_body
    blank = np.full(data["frames"].shape, round(0.3 * 255), np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = plausibility.physics_report(blank, system, 0.125, true_q=data["q"])
        paths = plausibility.write_pictures(blank[:2], system, 0.125, tmp_path, "blank")
    assert all(path.stat().st_size > 0 for path in paths)
    assert report["found_fraction"] == 0 and report["plausible_fraction"] == 0
    assert report["energy_sequences"] == 0 and report["position_error_px"] is None
