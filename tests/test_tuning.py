"""GECO tuning with keras-tuner: the pinned search space, the objective, a tiny search end to end
(a diverged trial recorded as FAILED, the report, resume), Hyperband and the distributed mode.

The two tests marked `slow` (Hyperband through `hgn tune`; a chief and two workers over gRPC on
127.0.0.1) take 50-150 s each on two shared CPU cores; the rest about 50 s together.
"""

import csv
import dataclasses
import math
import os
import socket
import subprocess
import sys

import keras_tuner
import numpy as np
import pytest
from hgn_tf.tuning.hypermodel import (
    OBJECTIVE,
    GecoHyperModel,
    KLBound,
    config_from_hp,
    failure_reason,
    score,
)
from hgn_tf.tuning.search import run_search

from hgn_tf import cli
from hgn_tf import config as C
from hgn_tf import train as train_lib
from hgn_tf.errors import ConfigError, RunError
from hgn_tf.geco import GecoConfig
from hgn_tf.model import HGN

# The PyTorch reproduction's GECO settings: the documented defaults of the search space.
REPRODUCTION = {"mode": "geco", "kappa": 0.033, "alpha": 0.99, "initial_multiplier": 1.0, "nu": 0.1}


# ------------------------------------------------------------------ search space


def test_search_space_defaults_and_ranges_are_pinned():
    base = C.tiny("pendulum")
    hypermodel = GecoHyperModel(base, tune_learning_rate=True)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)

    # Defaults: the reproduction's GECO and the base's learning rate -- tiny's own config.
    cfg = config_from_hp(hp, base, tune_learning_rate=True)
    assert cfg.geco == GecoConfig(**REPRODUCTION, beta=base.geco.beta)
    assert cfg == base
    # build() is the ordinary build_model on that config: same class, config, seeded weights.
    assert isinstance(model, HGN) and model.geco_config == cfg.geco
    reference = train_lib.build_model(cfg)
    for a, b in zip(model.weights, reference.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(base.train.learning_rate)

    space = {p.name: p for p in hp.space}
    assert list(space) == ["mode", "kappa", "alpha", "initial_multiplier", "nu", "beta",
                           "learning_rate"]
    assert list(space["mode"].values) == ["geco", "fixed_beta"]
    assert list(space["alpha"].values) == [0.0, 0.9, 0.99]
    ranges = {n: (space[n].min_value, space[n].max_value, space[n].sampling)
              for n in ("kappa", "initial_multiplier", "nu", "beta", "learning_rate")}
    assert ranges == {"kappa": (0.01, 0.1, "log"), "initial_multiplier": (0.1, 1e6, "log"),
                      "nu": (0.01, 1.0, "log"), "beta": (1e-6, 1.0, "log"),
                      "learning_rate": (1e-4, 3e-3, "log")}
    # GECO's parameters are active in GECO mode only, beta in fixed-beta mode only.
    for name in ("kappa", "alpha", "initial_multiplier", "nu"):
        assert hp.is_active(name)
    assert not hp.is_active("beta")

    # Fixed-beta mode: beta at its default, GECO's parameters inactive (the base's values stay).
    hp = keras_tuner.HyperParameters()
    hp.values["mode"] = "fixed_beta"
    fixed = config_from_hp(hp, base)
    assert fixed.geco == dataclasses.replace(base.geco, mode="fixed_beta", beta=1e-3)
    assert hp.is_active("beta") and not hp.is_active("nu")

    # Without tune_learning_rate there is no learning-rate hyperparameter.
    hp2 = keras_tuner.HyperParameters()
    config_from_hp(hp2, base)
    assert "learning_rate" not in [p.name for p in hp2.space]
    # The base learning rate is the tuned one's default, so it must lie in the range.
    with pytest.raises(ConfigError, match="learning_rate.*0.01"):
        GecoHyperModel(base.replace(train={"learning_rate": 1e-2}), tune_learning_rate=True)


def test_sampled_values_become_the_typed_config():
    base = C.tiny("pendulum")
    hp = keras_tuner.HyperParameters()
    config_from_hp(hp, base, tune_learning_rate=True)
    hp.values.update(kappa=0.05, alpha=0.0, initial_multiplier=3.0, nu=0.5, learning_rate=3e-4)
    cfg = config_from_hp(hp, base, tune_learning_rate=True)
    assert cfg.geco == GecoConfig(mode="geco", kappa=0.05, alpha=0.0, initial_multiplier=3.0,
                                  nu=0.5, beta=base.geco.beta)
    assert cfg.train == dataclasses.replace(base.train, learning_rate=3e-4)
    assert (cfg.data, cfg.model) == (base.data, base.model)


# ------------------------------------------------------------------ objective


def test_objective_penalises_a_kl_outside_its_bound():
    assert OBJECTIVE.name == "val_score" and OBJECTIVE.direction == "min"
    bound = KLBound()
    assert (bound.kl_min, bound.kl_max, bound.penalty) == (1e-3, 1e3, 10.0)
    assert score(0.002, 5.0) == 0.002
    assert score(0.002, 1e-3) == 0.002 and score(0.002, 1e3) == 0.002  # bounds inclusive
    assert score(0.002, 9e-4) == pytest.approx(0.02)  # collapsed posterior
    assert score(0.002, 0.0) == pytest.approx(0.02)
    assert score(0.002, 1.1e3) == pytest.approx(0.02)  # exploding posterior
    # A penalised trial ranks after an in-bound one with a worse reconstruction (up to x10).
    assert score(0.002, 1e-5) > score(0.015, 1.0)
    custom = KLBound(kl_min=0.5, kl_max=2.0, penalty=3.0)
    assert score(0.01, 0.4, custom) == pytest.approx(0.03)
    assert score(0.01, 1.0, custom) == 0.01
    with pytest.raises(ConfigError, match="val_recon"):
        score(math.nan, 1.0)
    with pytest.raises(ConfigError, match="val_kl"):
        score(0.01, math.inf)
    with pytest.raises(ConfigError, match="kl_min"):
        KLBound(kl_min=2.0, kl_max=1.0)
    with pytest.raises(ConfigError, match="penalty"):
        KLBound(penalty=0.5)


def test_failure_reason_flags_nan_and_a_multiplier_at_its_clip_bound():
    geco = GecoConfig()
    healthy = {"loss": [0.5, 0.4], "recon": [0.03, 0.02], "kl": [1.0, 2.0],
               "val_recon": [0.03], "val_kl": [1.5]}
    assert failure_reason(healthy, 2.0, geco) is None
    assert "non-finite loss" in failure_reason({**healthy, "loss": [0.5, math.nan]}, 2.0, geco)
    assert "non-finite val_kl" in failure_reason({**healthy, "val_kl": [math.inf]}, 2.0, geco)
    assert "clip bound" in failure_reason(healthy, 1e10, geco)
    assert "clip bound" in failure_reason(healthy, 1e-10, geco)
    assert "clip bound" in failure_reason(healthy, math.nan, geco)
    assert failure_reason(healthy, 1.0, GecoConfig(mode="fixed_beta", beta=0.01)) is None


# ------------------------------------------------------------------ search end to end


class _SecondTrialDiverges(GecoHyperModel):
    """The second trial runs GECO with nu = 1e4: lambda * exp(1e4 * C_ma) overflows at the first
    step (C_ma = recon - kappa^2 ~ 0.04 > 0 for an untrained model) and is clipped to 1e10."""

    fits = 0

    def fit(self, hp, model, *args, **kwargs):
        type(self).fits += 1
        if type(self).fits == 2:
            model.geco_config = dataclasses.replace(model.geco_config, mode="geco", nu=1e4)
        return super().fit(hp, model, *args, **kwargs)


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_tiny_search_records_a_diverged_trial_as_failed_and_writes_its_report(
        tiny_config, tmp_path):
    out = tmp_path / "search"
    results = run_search(tiny_config, out, algorithm="random", max_trials=3, steps_per_trial=2,
                         seed=1, hypermodel_class=_SecondTrialDiverges)

    assert [t.status for t in results.trials] == ["COMPLETED", "FAILED", "COMPLETED"]
    failed = results.trials[1]
    assert "clip bound" in failed.note and failed.val_recon is None and failed.score is None
    for t in results.completed:
        assert t.steps == 2 and 0 < t.val_recon < 1 and t.val_kl > 0
        assert t.score == score(t.val_recon, t.val_kl)
        assert math.isfinite(t.multiplier)
        assert t.config == config_from_hp(_hp_with(t.values, tiny_config), tiny_config)
    assert results.best.score == min(t.score for t in results.completed)

    rows = _read_csv(out / "results.csv")
    assert [r["trial"] for r in rows] == [t.trial_id for t in results.trials]
    assert [r["status"] for r in rows] == ["COMPLETED", "FAILED", "COMPLETED"]
    assert {"mode", "kappa", "alpha", "initial_multiplier", "nu", "beta", "val_recon", "val_kl",
            "score"} <= set(rows[0])
    best_row = next(r for r in rows if r["trial"] == results.best.trial_id)
    assert float(best_row["val_recon"]) == pytest.approx(results.best.val_recon)
    md = (out / "results.md").read_text()
    assert md.count("| COMPLETED |") == 2 and md.count("| FAILED |") == 1
    assert (out / "recon_vs_kl.png").stat().st_size > 1000

    best = C.RunConfig.load(out / "best_config.json")
    assert best == results.best.config
    assert (best.data, best.model, best.train) == (tiny_config.data, tiny_config.model,
                                                   tiny_config.train)

    # Same arguments again: the finished search is reloaded (overwrite=False), no new trial.
    again = run_search(tiny_config, out, algorithm="random", max_trials=3, steps_per_trial=2,
                       seed=1, hypermodel_class=_SecondTrialDiverges)
    assert [(t.trial_id, t.status, t.score) for t in again.trials] == \
        [(t.trial_id, t.status, t.score) for t in results.trials]
    assert _SecondTrialDiverges.fits == 3
    # Other settings on the same folder are refused.
    with pytest.raises(RunError, match="steps_per_trial"):
        run_search(tiny_config, out, algorithm="random", max_trials=3, steps_per_trial=4, seed=1,
                   hypermodel_class=_SecondTrialDiverges)


def _hp_with(values, base):
    """HyperParameters holding `values` (a results row's; None: inactive)."""
    hp = keras_tuner.HyperParameters()
    config_from_hp(hp, base)
    hp.values.update({k: v for k, v in values.items() if v is not None})
    return hp


def test_cli_reports_invalid_arguments(tiny_config, tmp_path, capsys):
    rc = cli.main(["tune", "--algorithm", "hyperband", "--max-trials", "2",
                   "--steps-per-trial", "2", "--preset", "tiny", "--out", str(tmp_path / "s"),
                   "--data-dir", tiny_config.data.data_dir, "--max-examples", "16"])
    assert rc == 2
    assert "Hyperband needs at least 3 epochs" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="algorithm"):
        run_search(tiny_config, tmp_path / "s2", algorithm="grid", max_trials=1)


# ------------------------------------------------------------------ slow: Hyperband, distributed


def _tune_args(tiny_config, out, *extra):
    return ["tune", "--system", "pendulum", "--preset", "tiny", "--out", str(out),
            "--data-dir", tiny_config.data.data_dir, "--max-examples", "16", *extra]


@pytest.mark.slow
def test_hgn_tune_hyperband_continues_the_best_trial(tiny_config, tmp_path, capsys):
    out = tmp_path / "hyperband"
    # max_epochs 3, factor 3: a first bracket of 3 one-step trials, then the best continued to 3.
    rc = cli.main(_tune_args(tiny_config, out, "--algorithm", "hyperband", "--max-trials", "4",
                             "--steps-per-trial", "3", "--steps-per-epoch", "1"))
    assert rc == 0
    assert "best_config.json" in capsys.readouterr().out
    rows = _read_csv(out / "results.csv")
    assert [r["status"] for r in rows] == ["COMPLETED"] * 4
    assert [int(r["steps"]) for r in rows] == [1, 1, 1, 3]
    first_round = {r["trial"]: float(r["score"]) for r in rows[:3]}
    assert rows[3]["continues"] == min(first_round, key=first_round.get)
    C.RunConfig.load(out / "best_config.json")


def _free_loopback_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_distributed_search_chief_and_two_workers_on_loopback(tiny_config, tmp_path):
    pytest.importorskip("grpc")
    out = tmp_path / "distributed"
    args = [sys.executable, "-m", "hgn_tf.cli", *_tune_args(
        tiny_config, out, "--algorithm", "random", "--max-trials", "4", "--steps-per-trial", "1")]
    port = str(_free_loopback_port())
    procs = {}
    try:
        for tuner_id in ("chief", "tuner0", "tuner1"):
            env = {**os.environ, "KERASTUNER_TUNER_ID": tuner_id,
                   "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": port,
                   "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
            procs[tuner_id] = subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                                               stderr=subprocess.STDOUT, text=True)
        logs = {k: p.communicate(timeout=400)[0] for k, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    for tuner_id, p in procs.items():
        assert p.returncode == 0, f"{tuner_id} failed:\n{logs[tuner_id][-3000:]}"
    assert "worker done" in logs["tuner0"] and "worker done" in logs["tuner1"]

    # The chief's oracle holds all four trials; both workers trained (one validated epoch each).
    rows = _read_csv(out / "results.csv")
    assert [r["status"] for r in rows] == ["COMPLETED"] * 4
    epochs = {k: logs[k].count("val_recon:") for k in ("tuner0", "tuner1")}
    assert sum(epochs.values()) == 4 and min(epochs.values()) >= 1, epochs
    assert "4 completed" in logs["chief"]
    C.RunConfig.load(out / "best_config.json")


def test_a_trial_follows_the_base_configs_curriculum():
    import keras
    import tensorflow as tf
    from hgn_tf.tuning.hypermodel import GecoHyperModel

    base = C.tiny().replace(train=dict(curriculum=[[0, 2], [1, 3]]))
    hypermodel = GecoHyperModel(base)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    seen = []

    class _Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(int(self.model.train_frames.numpy()))

    x = tf.data.Dataset.from_tensors(np.zeros((2, 4, 32, 32, 3), np.float32)).repeat()
    hypermodel.fit(hp, model, x, validation_data=x, epochs=1, steps_per_epoch=3,
                   validation_steps=1, verbose=0, shuffle=False, callbacks=[_Record()])
    assert seen == [2, 3, 3]
