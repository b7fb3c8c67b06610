"""Training through `model.fit`: the run folder, checkpoints, resume, TensorBoard.

A run folder holds:
    config.json          the resolved `RunConfig` (the run's identity; resume checks it)
    backup/              `RunBackup`, at every epoch end: epoch-<n>.weights.h5 (weights + optimizer
                         + GECO state after n epochs) and training_metadata.json (n, the optimiser
                         step, which weights file, and every epoch's history row); a killed run
                         restarts from the last one
    logs/                TensorBoard (train and validation scalars)
    history.csv          one row per epoch, derived: rewritten from the backup's rows
    model.weights.h5     the final weights (written when training completes)

Crash safety: every file above except TensorBoard's event logs is written to a temporary file in
its folder and renamed over the old one (`os.replace`, atomic on POSIX), so a kill at any moment
leaves either the old or the new file, never a half-written one. The backup's metadata is renamed
last and names its weights file, so the pair is always consistent; the history is part of the
metadata, so history.csv can never lose or duplicate a row (a kill between the two renames is
repaired on resume). A file that is unreadable anyway (a disk fault, a hand edit) is a one-line
`RunError` naming it.

Exact resume: a killed and resumed run ends with the weights of an uninterrupted one (on the CPU,
to float tolerance; tested). The backup holds the weights, Adam's moments, GECO's state, the step
count and the posterior's noise stream (the keras SeedGenerator states); the training data order
is a function of the seed alone (`hgn_tf.data.pipeline`, with TensorFlow's global seed set here
first) and a resumed run's stream starts at the step it resumes from. Not covered: GPU kernels
that are not deterministic, and TensorBoard's event files (a resumed run appends a new one).

Scaling: `strategy="mirrored"` trains on all local GPUs (or logical CPU devices) with
`tf.distribute.MirroredStrategy`; the batch size is global. Multi-worker `fit` is broken upstream in
Keras 3.15 (keras-team/keras#20585), so MultiWorkerMirroredStrategy is not offered.
"""

from __future__ import annotations

import csv
import io
import json
import math
import pathlib

import keras
import numpy as np
import tensorflow as tf

from hgn_tf import data as data_lib
from hgn_tf.config import CONFIG_FILE, STRATEGIES, RunConfig
from hgn_tf.errors import ConfigError, RunError
from hgn_tf.files import atomic_write_text, save_weights
from hgn_tf.model import HGN

__all__ = ["BACKUP_DIR", "BACKUP_STATE_FILE", "CONFIG_FILE", "HISTORY_FILE", "WEIGHTS_FILE",
           "Curriculum", "RunBackup", "StopAtStep", "atomic_write_text", "build_model",
           "load_run", "load_weights", "make_strategy", "save_weights", "train"]

WEIGHTS_FILE = "model.weights.h5"
HISTORY_FILE = "history.csv"
BACKUP_DIR = "backup"
BACKUP_STATE_FILE = "training_metadata.json"


def load_weights(model, path, what: str = "run_dir") -> None:
    """`model.load_weights(path)`; an unreadable file is a RunError naming it, not an h5py trace."""
    try:
        model.load_weights(str(path))
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RunError(f"`{what}`: the weights file {str(path)!r} is unreadable ({first:.200}); "
                       "it was not written by this version or is damaged: delete it (a backup "
                       "restarts from the previous epoch's, the final weights are rewritten by "
                       "resuming `hgn train`).", what) from None


def _read_json(path, what: str) -> dict:
    try:
        state = json.loads(pathlib.Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"`{what}`: {str(path)!r} is not readable JSON ({e}); it is damaged: "
                       f"delete it to restart the run from its beginning.", what) from None
    if not isinstance(state, dict):
        raise RunError(f"`{what}`: {str(path)!r} must hold a JSON object, got "
                       f"{type(state).__name__}.", what)
    return state


def make_strategy(name: str) -> tf.distribute.Strategy:
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    raise ConfigError(f"`strategy` must be one of {STRATEGIES}, got {name!r}.", "strategy")


def learning_rate(train_cfg) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """Adam's step size for a `TrainConfig`: a float, or a schedule over optimiser steps."""
    if train_cfg.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            train_cfg.learning_rate, decay_steps=train_cfg.steps, alpha=train_cfg.lr_final_fraction)
    return train_cfg.learning_rate


def build_model(cfg: RunConfig) -> HGN:
    """A compiled HGN with every weight created (seeded by `cfg.train.seed`)."""
    keras.utils.set_random_seed(cfg.train.seed)
    model = HGN(cfg.model, cfg.geco, seed=cfg.train.seed, resolution=cfg.data.resolution,
                sequence_length=cfg.data.n_frames)
    model.build_all()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate(cfg.train)))
    # Create Adam's slots now, so that any checkpoint load (BackupAndRestore, keras-tuner's
    # Hyperband, `load_run`) restores the optimizer state too instead of skipping it.
    model.optimizer.build(model.trainable_variables)
    return model


def _check_run_dir(cfg: RunConfig, run_dir: pathlib.Path) -> None:
    path = run_dir / CONFIG_FILE
    if path.exists():
        saved = RunConfig.load(path)
        if saved != cfg:
            raise RunError(
                f"`run_dir` {str(run_dir)!r} holds a run with another config; resume it with the "
                f"same config (`hgn train --run-dir {run_dir}` reads it) or choose a new folder.",
                "run_dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, cfg.to_json() + "\n")


class Curriculum(keras.callbacks.Callback):
    """Sets the model's `train_frames` from `TrainConfig.curriculum` before every step.

    Every `fit` of a config with a curriculum needs it (`train`, and keras-tuner's trials)."""

    def __init__(self, cfg: RunConfig):
        super().__init__()
        self.cfg = cfg
        self._frames = None

    def on_train_batch_begin(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        frames = self.cfg.train.frames_at(step, self.cfg.data.n_frames)
        if frames != self._frames:
            self.model.train_frames.assign(frames)
            self._frames = frames


class StopAtStep(keras.callbacks.Callback):
    """Ends training after exactly `steps` optimiser steps (the last epoch may be shorter)."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= self.steps:
            self.model.stop_training = True


def _seed_generators(model) -> list:
    """The model's keras SeedGenerators (its random streams), in a fixed order."""
    return [g for layer in model._flatten_layers(include_self=True)
            for g in getattr(layer, "_seed_generators", [])]


class RunBackup(keras.callbacks.Callback):
    """Crash-safe backup and restore of a run, and its derived history.csv.

    At every epoch end: the weights (with Adam's moments, GECO's state and the step count) go to
    `backup/epoch-<n>.weights.h5` (temporary file + rename); then `backup/training_metadata.json`
    (n, the step, the weights file's name and every epoch's history row) is replaced atomically;
    then history.csv is rewritten from those rows and older weights files are deleted. A kill at
    any point leaves a metadata file naming a complete weights file. At train begin the last
    backup is restored and history.csv is rewritten from its rows, so the history never loses or
    duplicates an epoch. Replaces `keras.callbacks.BackupAndRestore` (which overwrites its one
    weights file in place) and `keras.callbacks.CSVLogger` (which appends).

    A backup written by `BackupAndRestore` (latest.weights.h5, metadata without "weights") is
    still restored; its history rows are read back from history.csv.
    """

    _LEGACY_WEIGHTS = "latest.weights.h5"

    def __init__(self, run_dir):
        super().__init__()
        self.run_dir = pathlib.Path(run_dir)
        self.backup_dir = self.run_dir / BACKUP_DIR
        self.state_path = self.backup_dir / BACKUP_STATE_FILE
        self.rows: list[dict] = []

    def on_train_begin(self, logs=None):
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        for folder in (self.run_dir, self.backup_dir):  # what a kill mid-write left behind
            for tmp in [*folder.glob(".tmp-*.weights.h5"), *folder.glob(".*.tmp")]:
                tmp.unlink(missing_ok=True)
        self.rows = []
        if self.state_path.exists():
            state = _read_json(self.state_path, "run_dir")
            epoch = state.get("epoch")
            if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
                raise RunError(f"`run_dir`: {str(self.state_path)!r} must give `epoch` as a "
                               f"non-negative integer, got {epoch!r}; it is damaged.", "run_dir")
            load_weights(self.model, self.backup_dir / state.get("weights", self._LEGACY_WEIGHTS))
            self.model._initial_epoch = epoch  # as BackupAndRestore: fit starts from it
            states = state.get("seed_states", [])
            for generator, value in zip(_seed_generators(self.model), states):
                generator.state.assign(np.asarray(value, generator.state.dtype))
            rows = state.get("history")
            self.rows = self._legacy_rows(epoch) if rows is None else rows
        self._write_history()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch}
        for key, value in sorted((logs or {}).items()):
            try:
                row[key] = float(value)
            except (TypeError, ValueError):
                row[key] = str(value)
        self.rows = [r for r in self.rows if r["epoch"] < epoch] + [row]
        name = f"epoch-{epoch + 1:05d}.weights.h5"
        save_weights(self.model, self.backup_dir / name)
        state = {"epoch": epoch + 1, "iterations": int(self.model.optimizer.iterations.numpy()),
                 "weights": name, "history": self.rows,
                 # The posterior's noise stream (keras SeedGenerator states are not weights).
                 "seed_states": [g.state.numpy().tolist() for g in _seed_generators(self.model)]}
        atomic_write_text(self.state_path, json.dumps(state, indent=1) + "\n")
        self._write_history()
        for old in [*self.backup_dir.glob("epoch-*.weights.h5"),
                    *self.backup_dir.glob(self._LEGACY_WEIGHTS + "*"),
                    *self.backup_dir.glob(BACKUP_STATE_FILE + ".bkp")]:
            if old.name != name:
                old.unlink(missing_ok=True)

    @staticmethod
    def saved_step(run_dir, steps_per_epoch: int) -> int:
        """The optimiser step the run in `run_dir` resumes from (0 for a new run)."""
        path = pathlib.Path(run_dir) / BACKUP_DIR / BACKUP_STATE_FILE
        if not path.exists():
            return 0
        state = _read_json(path, "run_dir")
        step = state.get("iterations", (state.get("epoch") or 0) * steps_per_epoch)
        return step if isinstance(step, int) and step >= 0 else 0

    def _write_history(self) -> None:
        path = self.run_dir / HISTORY_FILE
        if not self.rows:
            path.unlink(missing_ok=True)
            return
        keys = sorted({k for row in self.rows for k in row} - {"epoch"})
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["epoch", *keys], restval="NA",
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(path, out.getvalue())

    def _legacy_rows(self, epoch: int) -> list[dict]:
        path = self.run_dir / HISTORY_FILE
        if not path.exists():
            return []
        rows = {}
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                try:
                    e = int(row.pop("epoch"))
                    rows[e] = {"epoch": e, **{k: float(v) for k, v in row.items() if v != "NA"}}
                except (TypeError, ValueError):
                    continue  # a torn last line of the old appending logger
        return [rows[e] for e in sorted(rows) if e < epoch]


def train(cfg: RunConfig, run_dir, *, verbose: int | str = "auto", callbacks=(),
          num_workers: int | None = None):
    """Train (or resume) the run in `run_dir`; returns (model, history).

    Calling it again on the same folder continues a killed run from its last epoch: the step
    count (optimizer iterations), the weights, Adam's moments and GECO's state all come back.
    """
    run_dir = pathlib.Path(run_dir)
    _check_run_dir(cfg, run_dir)
    data_lib.build(cfg.data, num_workers=num_workers)
    strategy = make_strategy(cfg.train.strategy)
    t = cfg.train
    # Exact resume: the data order is a function of the seed (not of what this process ran
    # before), and a resumed run's stream starts where the killed run's backup left it.
    tf.random.set_seed(t.seed)
    start = RunBackup.saved_step(run_dir, t.steps_per_epoch) * t.batch_size
    train_ds = data_lib.pipeline(data_lib.load(cfg.data, "train", shuffle_files=False),
                                 t.batch_size, shuffle_buffer=cfg.data.shuffle_buffer,
                                 seed=t.seed, repeat=True, start=start)
    val_ds = None
    if cfg.data.validation_fraction > 0:
        val_ds = data_lib.pipeline(data_lib.load(cfg.data, "validation"), t.batch_size,
                                   repeat=True)
    with strategy.scope():
        model = build_model(cfg)
    epochs = math.ceil(t.steps / t.steps_per_epoch)
    cbs = [
        RunBackup(run_dir),
        keras.callbacks.TerminateOnNaN(),
        Curriculum(cfg),
        StopAtStep(t.steps),
        keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False),
        *callbacks,
    ]
    # shuffle=False: the tf.data pipeline shuffles (seeded); fit's own shuffle ignores datasets.
    history = model.fit(train_ds, epochs=epochs, steps_per_epoch=t.steps_per_epoch, shuffle=False,
                        validation_data=val_ds,
                        validation_steps=t.validation_steps if val_ds is not None else None,
                        callbacks=cbs, verbose=verbose)
    save_weights(model, run_dir / WEIGHTS_FILE)
    return model, history


def load_run(run_dir) -> tuple[RunConfig, HGN]:
    """The config and the trained model of a finished run."""
    run_dir = pathlib.Path(run_dir)
    if not (run_dir / CONFIG_FILE).exists():
        raise RunError(f"`run_dir` {str(run_dir)!r} has no {CONFIG_FILE}: not a training run.",
                       "run_dir")
    cfg = RunConfig.load(run_dir / CONFIG_FILE)
    weights = run_dir / WEIGHTS_FILE
    if not weights.exists():
        raise RunError(f"`run_dir` {str(run_dir)!r} has no {WEIGHTS_FILE}: training has not "
                       f"finished (run `hgn train --run-dir {run_dir}` to resume it).", "run_dir")
    model = build_model(cfg)
    load_weights(model, weights)
    return cfg, model
