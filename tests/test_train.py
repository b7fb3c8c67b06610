"""Training through model.fit: run folder, resume after a kill, MirroredStrategy equivalence."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from hgn_tf import config as C
from hgn_tf import train as train_lib
from hgn_tf.errors import RunError
from hgn_tf.model import HGN
from hgn_tf.train import build_model, load_run, train


class _Kill(keras.callbacks.Callback):
    """Simulates a kill right after the first epoch's checkpoint."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt("simulated kill")


def test_train_writes_the_run_folder_and_resumes_after_a_kill(tiny_config, tmp_path):
    cfg = tiny_config.replace(train=dict(steps=4, steps_per_epoch=2))
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        # BackupAndRestore runs before _Kill in the callback list, so epoch 0 is saved.
        train(cfg, run, verbose=0, callbacks=[_Kill()])
    assert (run / "backup").exists() and not (run / "model.weights.h5").exists()

    seen = {}

    class _Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["iterations"] = int(self.model.optimizer.iterations)
            seen["geco_step"] = float(self.model.geco_step)
            seen["multiplier"] = float(self.model.geco_multiplier)

    model, history = train(cfg, run, verbose=0, callbacks=[_Record()])
    # It resumed after epoch 0: two steps were done, GECO had seen them, two more ran.
    assert seen["iterations"] == 2 and seen["geco_step"] == 2.0
    assert seen["multiplier"] != cfg.geco.initial_multiplier
    assert int(model.optimizer.iterations) == 4 and float(model.geco_step) == 4.0
    assert len(history.epoch) == 1
    assert C.RunConfig.load(run / "config.json") == cfg
    assert (run / "history.csv").read_text().count("\n") == 3  # header + 2 epochs
    assert any((run / "logs").rglob("events.out.tfevents*"))

    cfg2, loaded = load_run(run)
    assert cfg2 == cfg
    x = np.random.default_rng(0).random((2, 4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(model.rollout(x, 4)["frames"], loaded.rollout(x, 4)["frames"],
                               atol=1e-6)


def _history_epochs(run):
    lines = (run / "history.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,") and "loss" in lines[0]
    return [int(line.split(",")[0]) for line in lines[1:]]


def _kill_mid_weights_write(monkeypatch, at_call):
    """The `at_call`-th weights write is killed half-way: a truncated file, then the kill."""
    calls = []
    original = HGN.save_weights

    def save_weights(self, filepath, *args, **kwargs):
        calls.append(filepath)
        original(self, filepath, *args, **kwargs)
        if len(calls) == at_call:
            size = pathlib.Path(filepath).stat().st_size
            with open(filepath, "r+b") as f:
                f.truncate(size // 3)
            raise KeyboardInterrupt("simulated kill during a weights write")

    monkeypatch.setattr(HGN, "save_weights", save_weights)


def _kill_at_rename(monkeypatch, run, at_call):
    """The `at_call`-th rename into the run folder never happens: the process dies first."""
    calls = []
    original = os.replace

    def replace(src, dst, *args, **kwargs):
        if str(dst).startswith(str(run)):
            calls.append(dst)
            if len(calls) == at_call:
                raise KeyboardInterrupt(f"simulated kill before renaming to {dst}")
        return original(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


# Epoch 0's end renames weights, metadata, history (calls 1-3); epoch 1's: calls 4-6 (a kill
# before rename 4 is the weights-write case).
@pytest.mark.parametrize("kill", ["weights write", "rename 5", "rename 6"])
def test_a_kill_at_any_write_resumes_without_losing_or_duplicating_history(
        tiny_config, tmp_path, monkeypatch, kill):
    cfg = tiny_config.replace(train=dict(steps=6, steps_per_epoch=2))
    run = tmp_path / "run"
    train_lib._check_run_dir(cfg, run)  # config.json first, so that the rename count is fixed
    with monkeypatch.context() as m:
        if kill == "weights write":
            _kill_mid_weights_write(m, at_call=2)  # epoch 1's backup
        else:
            _kill_at_rename(m, run, at_call=int(kill.split()[1]))
        with pytest.raises(KeyboardInterrupt):
            train(cfg, run, verbose=0)
    model, _ = train(cfg, run, verbose=0)
    assert int(model.optimizer.iterations) == 6
    assert _history_epochs(run) == [0, 1, 2]
    assert not [p.name for p in run.rglob("*") if p.name.startswith(".")]  # no temporaries
    assert [p.name for p in (run / "backup").glob("*.h5")] == ["epoch-00003.weights.h5"]
    load_run(run)


def test_a_backup_of_the_previous_format_is_resumed(tiny_config, tmp_path):
    """Runs killed under keras's BackupAndRestore + CSVLogger resume with the new code."""
    cfg = tiny_config.replace(train=dict(steps=4, steps_per_epoch=2))
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run, verbose=0, callbacks=[_Kill()])
    # Rewrite the backup as BackupAndRestore left it, with a row appended after the backup.
    backup = run / "backup"
    (backup / "epoch-00001.weights.h5").rename(backup / "latest.weights.h5")
    (backup / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    with open(run / "history.csv", "a") as f:
        f.write("1,0.5,0.5\n")  # an epoch the backup does not hold: dropped on resume
    model, _ = train(cfg, run, verbose=0)
    assert int(model.optimizer.iterations) == 4
    assert _history_epochs(run) == [0, 1]
    assert sorted(p.name for p in backup.iterdir()) == ["epoch-00002.weights.h5",
                                                       "training_metadata.json"]


def test_damaged_run_files_are_one_line_run_errors_naming_them(tiny_config, tmp_path):
    cfg = tiny_config.replace(train=dict(steps=2, steps_per_epoch=2))
    run = tmp_path / "run"
    train(cfg, run, verbose=0)
    final = run / "model.weights.h5"
    final.write_bytes(final.read_bytes()[:100])
    with pytest.raises(RunError, match="model.weights.h5") as e:
        load_run(run)
    assert "\n" not in str(e.value) and e.value.field == "run_dir"
    state = run / "backup" / "training_metadata.json"
    for damaged in (b"", b"{\"epoch\": 1, \"weig"):
        state.write_bytes(damaged)
        with pytest.raises(RunError, match="training_metadata.json") as e:
            train(cfg, run, verbose=0)
        assert "\n" not in str(e.value)
    state.write_text('{"epoch": 1, "weights": "epoch-00001.weights.h5", "history": []}')
    (run / "backup" / "epoch-00001.weights.h5").write_bytes(b"")
    with pytest.raises(RunError, match="epoch-00001.weights.h5"):
        train(cfg, run, verbose=0)


class _KillAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt("simulated kill")


def test_a_killed_and_resumed_run_ends_with_the_uninterrupted_runs_weights(tiny_config, tmp_path):
    # 12 training sequences, batch 4: the kill after step 4 falls inside the second pass, so the
    # resumed data stream must start mid-pass, with that pass's shuffle.
    cfg = tiny_config.replace(train=dict(steps=6, steps_per_epoch=2))
    whole, _ = train(cfg, tmp_path / "whole", verbose=0)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "killed", verbose=0, callbacks=[_KillAfterEpoch(1)])
    resumed, _ = train(cfg, tmp_path / "killed", verbose=0)
    assert int(resumed.optimizer.iterations) == 6
    for a, b in zip(whole.weights, resumed.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
    # The same batches and noise gave the same losses: the histories agree row by row.
    assert ((tmp_path / "whole" / "history.csv").read_text().splitlines()[1:]
            == (tmp_path / "killed" / "history.csv").read_text().splitlines()[1:])


def test_run_dir_with_another_config_is_refused(tiny_config, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    tiny_config.save(run / "config.json")
    with pytest.raises(RunError, match="another config"):
        train(tiny_config.replace(train=dict(seed=9)), run, verbose=0)


_MIRRORED = textwrap.dedent("""
    import os, json
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import keras, numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from hgn_tf import config as C
    from hgn_tf.train import build_model
    # XLA-compiled integrator steps on, as on a GPU (the tiny preset has them off).
    cfg = C.tiny().replace(geco=dict(alpha=0.5, nu=1.0), model=dict(xla_steps=True))
    x = np.random.default_rng(0).random((4, 4, 32, 32, 3)).astype("float32")
    out = {}
    for name, strategy in [("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
                           ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))]:
        with strategy.scope():
            model = build_model(cfg)
            model.compile(optimizer=keras.optimizers.SGD(0.5))
        # Posterior draws cannot be the same on one and two replicas; use the posterior mean so
        # that one step on the same batch must give the same numbers.
        losses = model.objective_terms
        model.objective_terms = lambda frames, training, horizon=None: losses(
            frames, training=False, horizon=horizon)
        hist = model.fit(tf.data.Dataset.from_tensors(x), epochs=2, verbose=0)
        out[name] = dict(loss=hist.history["loss"], recon=hist.history["recon"],
                         multiplier=float(model.geco_multiplier.numpy()),
                         ma=float(model.geco_constraint_ma.numpy()),
                         w=float(np.sum(model.decoder.trainable_variables[0].numpy())))
    print(json.dumps(out))
""")


def test_mirrored_strategy_step_matches_one_device():
    res = subprocess.run([sys.executable, "-c", _MIRRORED], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    one, two = out["one"], out["two"]
    for k in ("loss", "recon", "multiplier", "ma", "w"):
        np.testing.assert_allclose(two[k], one[k], rtol=2e-4, err_msg=k)


def test_curriculum_sets_the_frames_each_step_trains_on(tiny_config, tmp_path):
    # 5 steps in epochs of 2: the third epoch stops after one step.
    cfg = tiny_config.replace(train=dict(steps=5, steps_per_epoch=2, curriculum=[[0, 2], [2, 3]]))
    seen = []

    class _Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(int(self.model.train_frames.numpy()))

    model, history = train(cfg, tmp_path / "run", verbose=0, callbacks=[_Record()])
    assert seen == [2, 2, 3, 3, 3] and int(model.optimizer.iterations) == 5
    assert len(history.epoch) == 3
    # A step fits only those frames (the encoder still reads all 4, autoencode): its
    # reconstruction term is the MSE over the first 3.
    det = build_model(cfg.replace(model=dict(deterministic=True)))
    x = np.random.default_rng(0).random((4, 4, 32, 32, 3)).astype("float32")
    x[:, 3] = 1.0  # a last frame unlike the others
    recon3, _ = det.objective_terms(x, training=False, horizon=3)
    recon4, _ = det.objective_terms(x, training=False)
    det.train_frames.assign(3)
    logs = det.train_step(x)
    assert float(logs["recon"]) == pytest.approx(float(recon3), rel=1e-5)
    assert float(recon4) > 1.1 * float(recon3)


def test_cosine_schedule_falls_from_the_learning_rate_to_its_final_fraction(tiny_config, tmp_path):
    cfg = tiny_config.replace(train=dict(steps=4, learning_rate=1e-3, lr_schedule="cosine",
                                         lr_final_fraction=0.1))
    model, _ = train(cfg, tmp_path / "run", verbose=0)
    lr = model.optimizer._learning_rate
    assert float(lr(0)) == pytest.approx(1e-3)
    assert float(lr(2)) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5), rel=1e-5)
    assert float(lr(4)) == pytest.approx(1e-4, rel=1e-5)
    # Resumed from the finished run, the optimizer is at step 4: the schedule's last step size.
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-4, rel=1e-5)
    assert float(build_model(tiny_config).optimizer.learning_rate) == pytest.approx(
        tiny_config.train.learning_rate)
