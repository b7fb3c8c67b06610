"""Training through `model.fit`: the run folder, checkpoints, resume, TensorBoard.

A run folder holds:
    config.json          the resolved `RunConfig` (the run's identity; resume checks it)
    backup/              keras.callbacks.BackupAndRestore: weights + optimizer + GECO state + epoch,
                         written at every epoch end; a killed run restarts from the last one
    logs/                TensorBoard (train and validation scalars)
    history.csv          one row per epoch (appended across resumes)
    model.weights.h5     the final weights (written when training completes)

Scaling: `strategy="mirrored"` trains on all local GPUs (or logical CPU devices) with
`tf.distribute.MirroredStrategy`; the batch size is global. Multi-worker `fit` is broken upstream in
Keras 3.15 (keras-team/keras#20585), so MultiWorkerMirroredStrategy is not offered.
"""

from __future__ import annotations

import math
import os
import pathlib

import keras
import tensorflow as tf

from hgn_tf import data as data_lib
from hgn_tf.config import CONFIG_FILE, STRATEGIES, RunConfig
from hgn_tf.errors import ConfigError, RunError
from hgn_tf.model import HGN

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "Curriculum", "StopAtStep", "build_model", "load_run",
           "make_strategy", "train"]

WEIGHTS_FILE = "model.weights.h5"


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
    tmp = path.with_suffix(".tmp")
    cfg.save(tmp)
    os.replace(tmp, path)


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
    train_ds = data_lib.pipeline(data_lib.load(cfg.data, "train", shuffle_files=False),
                                 t.batch_size, shuffle_buffer=cfg.data.shuffle_buffer,
                                 seed=t.seed, repeat=True)
    val_ds = None
    if cfg.data.validation_fraction > 0:
        val_ds = data_lib.pipeline(data_lib.load(cfg.data, "validation"), t.batch_size,
                                   repeat=True)
    with strategy.scope():
        model = build_model(cfg)
    epochs = math.ceil(t.steps / t.steps_per_epoch)
    cbs = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), save_freq="epoch",
                                         delete_checkpoint=False),
        keras.callbacks.TerminateOnNaN(),
        Curriculum(cfg),
        StopAtStep(t.steps),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False),
        *callbacks,
    ]
    # shuffle=False: the tf.data pipeline shuffles (seeded); fit's own shuffle ignores datasets.
    history = model.fit(train_ds, epochs=epochs, steps_per_epoch=t.steps_per_epoch, shuffle=False,
                        validation_data=val_ds,
                        validation_steps=t.validation_steps if val_ds is not None else None,
                        callbacks=cbs, verbose=verbose)
    model.save_weights(str(run_dir / WEIGHTS_FILE))
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
    model.load_weights(str(weights))
    return cfg, model
