"""`hgn experiment table1`: the tables, resuming after a kill, and the noise floor."""

import csv
import json

import numpy as np
import pytest

from hgn_tf import cli, physics
from hgn_tf.errors import ConfigError
from hgn_tf.experiments import table1

SYSTEMS, VARIANTS = ("mass_spring", "pendulum"), ("leapfrog", "euler")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiment")
    out, data_dir = root / "out", str(root / "data")
    calls = []
    real_train = table1.train

    def killed_at_the_second_pair(cfg, run_dir, **kwargs):
        calls.append(run_dir)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated kill")
        return real_train(cfg, run_dir, **kwargs)

    table1.train = killed_at_the_second_pair
    try:
        with pytest.raises(KeyboardInterrupt):
            table1.run_table1(out, scale="tiny", systems=SYSTEMS, variants=VARIANTS,
                              data_dir=data_dir, max_sequences=8, verbose=False)
        first = out / "autoencode" / "mass_spring" / "leapfrog"
        finished_weights = (first / "model.weights.h5").stat().st_mtime_ns
        calls.clear()
        table1.train = lambda cfg, run_dir, **kw: (calls.append(run_dir),
                                                   real_train(cfg, run_dir, **kw))[1]
        results = table1.run_table1(out, scale="tiny", systems=SYSTEMS, variants=VARIANTS,
                                    data_dir=data_dir, max_sequences=8, verbose=False)
    finally:
        table1.train = real_train
    return out / "autoencode", results, calls, finished_weights


def test_a_killed_runner_resumes_without_retraining_finished_pairs(experiment):
    root, results, calls, finished_weights = experiment
    assert set(results) == {(s, v) for s in SYSTEMS for v in VARIANTS}
    # The first pair finished before the kill: not trained again, its weights untouched.
    assert root / "mass_spring" / "leapfrog" not in calls and len(calls) == 3
    assert (root / "mass_spring" / "leapfrog" / "model.weights.h5").stat().st_mtime_ns \
        == finished_weights
    for s in SYSTEMS:
        for v in VARIANTS:
            metrics = json.loads((root / s / v / "eval" / "metrics.json").read_text())
            assert metrics["horizon"] == 30 and metrics["frames_read"] == 30
            assert json.loads((root / s / v / "timing.json").read_text())["train_seconds"] > 0


def test_the_tables_have_the_expected_rows_and_columns(experiment):
    root = experiment[0]
    md = (root / "table1.md").read_text().splitlines()
    head = next(line for line in md if line.startswith("| model |"))
    assert head.count("train / test") == 2 and "mass_spring" in head and "pendulum" in head
    names = [line.split("|")[1].strip() for line in md if line.startswith("| ")]
    for row in ("HGN leapfrog", "HGN euler", "mean frame", "repeat frame 29",
                "noise floor (clean states rendered)", "HGN paper, leapfrog", "HGN paper, euler",
                "[Re] HGN, leapfrog, autoencode"):
        assert row in names, (row, names)
    assert any("3.84 / 6.23" in line for line in md)  # the paper's mass-spring leapfrog
    # [Re] HGN's Table 2: its pendulum Euler row, in the pendulum column only.
    assert "| [Re] HGN, euler, pendulum (their Table 2) | - | - / 17.86 |" in md
    rows = list(csv.DictReader((root / "table1.csv").open()))
    # 2 systems x (2 variants + noise floor) x 2 splits x 2 windows (all, read; nothing after 30)
    assert len(rows) == 2 * 3 * 2 * 2
    assert {r["model"] for r in rows} == {"leapfrog", "euler", "noise_floor"}
    t2 = (root / "table2.md").read_text()
    assert "| HGN leapfrog |" in t2 and "| HGN euler |" in t2 and "157.28 / 120.16" in t2
    vpt = (root / "vpt.md").read_text().splitlines()
    assert [line.split("|")[1].strip() for line in vpt if line.startswith("| ")][2:] == [
        "HGN leapfrog", "HGN euler", "noise floor"]
    phys = (root / "physics.md").read_text().splitlines()
    assert [line.split("|")[1].strip() for line in phys if line.startswith("| ")][2:] == [
        "HGN leapfrog, rollouts", "HGN leapfrog, samples, N(0, I)", "HGN euler, rollouts",
        "HGN euler, samples, N(0, I)", "stored frames", "clean states rendered"]
    clean = next(line for line in phys if line.startswith("| clean states rendered"))
    # The clean render, read back: every body found, the true states to a fraction of a pixel.
    assert clean.count("1.000 /") == 2 and clean.count(" px") == 2, clean


def test_noise_floor_is_zero_on_its_own_states_and_grows_with_noise():
    system = physics.get("pendulum")
    out = physics.generate(system, 6, seed=0, split="test", n_frames=30, dt=0.125,
                           resolution=32)
    q = out["q"].astype(np.float64)
    mean_frame = np.full((32, 32, 3), 0.5, np.float32)
    errors = []
    for std in (0.0, 0.05, 0.2):
        noisy = q + std * np.random.default_rng(1).standard_normal(q.shape)
        frames = physics.render_states(system, noisy) / np.float32(255)
        r = table1.floor_report("pendulum", q, frames, mean_frame=mean_frame, frames_read=5)
        errors.append(r["after"]["pixel_mse"])
        if std == 0:
            assert r["pixel_mse"] == 0 and r["read"]["pixel_mse"] == 0 and r["vpt"] == 30
    assert errors[0] == 0 < errors[1] < errors[2]


def test_the_prediction_protocol_writes_its_floor_rows(tmp_path, monkeypatch):
    import collections

    from hgn_tf import evaluate as evaluate_mod
    from hgn_tf.physics import inference

    monkeypatch.setattr(evaluate_mod, "_FLOOR_CACHE", collections.OrderedDict())
    calls = []
    real = inference.posterior_frames
    monkeypatch.setattr(inference, "posterior_frames",
                        lambda *a, **kw: calls.append(1) or real(*a, **kw))
    table1.run_table1(tmp_path, scale="tiny", protocol="prediction", systems=("pendulum",),
                      variants=("leapfrog",), data_dir=str(tmp_path / "data"), max_sequences=8,
                      verbose=False)
    root = tmp_path / "prediction"
    floor = json.loads((root / "pendulum" / "prediction_floor.json").read_text())
    clean = json.loads((root / "pendulum" / "noise_floor.json").read_text())
    for split in ("train", "test"):
        # The frames read are the floor's own; after them the expected frame beats the sharp
        # maximum-likelihood guess.
        assert floor[split]["read"]["pixel_mse"] == 0
        assert floor[split]["after"]["pixel_mse"] < floor[split]["fit"]["after"]["pixel_mse"]
        assert clean[split]["read"]["pixel_mse"] > 0
        assert floor[split]["n_sequences"] == 8 and floor[split]["ess_median"] > 1
    # The pair's own evaluation scored the same floor (its pictures draw the floor's rows),
    # computed once per split for both.
    pair = json.loads((root / "pendulum" / "leapfrog" / "eval" / "metrics.json").read_text())
    for split in ("train", "test"):
        assert pair[split]["prediction_floor"]["after"] == floor[split]["after"]
    assert len(calls) == 2
    names = [line.split("|")[1].strip() for line in (root / "table1.md").read_text().splitlines()
             if line.startswith("| ")]
    assert "prediction floor (true dynamics: the expected frame given the 5 frames read)" in names
    rows = list(csv.DictReader((root / "table1.csv").open()))
    assert {r["model"] for r in rows} == {"leapfrog", "noise_floor", "prediction_floor",
                                          "prediction_floor_fit"}
    vpt = (root / "vpt.md").read_text()
    assert "| prediction floor (expected frame) |" in vpt


def test_bad_arguments_name_the_argument(tmp_path, capsys):
    with pytest.raises(ConfigError) as e:
        table1.run_table1(tmp_path, scale="huge", systems=SYSTEMS)
    assert e.value.field == "scale"
    with pytest.raises(ConfigError) as e:
        table1.run_table1(tmp_path, scale="tiny", systems=("double_pendulum", "spring"))
    assert e.value.field == "systems"
    with pytest.raises(SystemExit) as e:
        cli.main(["experiment", "table1", "--variants", "verlet"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "--variants" in err


def test_predictive_draws_and_precision_reach_every_pair(tmp_path, monkeypatch, capsys):
    default = table1.pair_config("pendulum", "leapfrog", scale="tiny", protocol="prediction")
    assert (default.model.predictive_draws, default.model.precision) == (1, "float32")
    for variant in ("leapfrog", "euler", "no-f-psi", "direct"):
        cfg = table1.pair_config("pendulum", variant, scale="tiny", protocol="prediction",
                                 predictive_draws=4, precision="mixed_bfloat16")
        assert (cfg.model.predictive_draws, cfg.model.precision) == (4, "mixed_bfloat16")
        assert cfg.replace(model=dict(predictive_draws=1, precision="float32")) == \
            table1.pair_config("pendulum", variant, scale="tiny", protocol="prediction")
    with pytest.raises(ConfigError) as e:
        table1.pair_config("pendulum", "deterministic", scale="tiny", protocol="prediction",
                           predictive_draws=4)
    assert e.value.field.endswith("predictive_draws")

    seen = {}
    monkeypatch.setattr(table1, "run_table1", lambda out, **kw: seen.update(kw) or {})
    argv = ["experiment", "table1", "--scale", "tiny", "--out", str(tmp_path),
            "--predictive-draws", "4", "--precision", "mixed_bfloat16"]
    assert cli.main(argv) == 0
    assert (seen["predictive_draws"], seen["precision"]) == (4, "mixed_bfloat16")
    monkeypatch.undo()
    capsys.readouterr()
    # Bad values: one line naming the flag, before any training.
    assert cli.main(["experiment", "table1", "--scale", "tiny", "--out", str(tmp_path),
                     "--variants", "deterministic", "--predictive-draws", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hgn experiment table1: error: --predictive-draws 2: ") \
        and err.count("\n") == 1, err
    assert not (tmp_path / "autoencode").exists()
    assert cli.main(["experiment", "table1", "--scale", "tiny", "--out", str(tmp_path),
                     "--max-sequences", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hgn experiment table1: error: --max-sequences 0: ") \
        and err.count("\n") == 1, err
    with pytest.raises(SystemExit) as e:
        cli.main(["experiment", "table1", "--precision", "float16"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "--precision" in err


def test_the_vpt_cell_keeps_a_half_frame_median():
    # 256 sequences: the median can fall between two frames; '.0f' printed 17.5 as 18.
    assert table1._vpt_cell({"vpt": 17.84, "vpt_median": 17.5}) == "17.8 / 17.5"
    assert table1._vpt_cell({"vpt": 12.3, "vpt_median": 12.0}) == "12.3 / 12"
    assert table1._vpt_cell({"vpt": 0.0, "vpt_median": 0}) == "0.0 / 0"
