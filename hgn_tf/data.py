"""From the `hamiltonian_systems` TFDS dataset to batched tf.data pipelines.

    build(data_cfg)                      -> builds (or finds) the TFDS data; small builds take the
                                            first `max_examples` sequences of each split
    load(data_cfg, split)                -> tf.data of float32 frames [T, H, W, 3] in [0, 1]
    pipeline(ds, batch_size, ...)        -> shuffled (seeded), batched, prefetched (not cached)

Splits: "train" and "validation" cut the TFDS train split by position (the last
`validation_fraction` is validation); "test" is the TFDS test split.
"""

from __future__ import annotations

import functools
import pathlib
import shutil

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from hgn_tf.config import DataConfig
from hgn_tf.errors import DataError, folder

__all__ = ["SPLITS", "build", "load", "load_arrays", "pipeline"]

SPLITS = ("train", "validation", "test")


def _builder(cfg: DataConfig, num_workers=None):
    import hgn_tf.datasets  # noqa: F401  (registers the builder)

    if cfg.data_dir is not None:
        folder("data_dir", cfg.data_dir, DataError)
    return tfds.builder(cfg.tfds_name, data_dir=cfg.data_dir, num_workers=num_workers)


def _check_size(cfg: DataConfig, builder) -> None:
    """DataError if the existing build holds fewer sequences than `cfg` asks for."""
    bc = builder.builder_config
    for split, full in (("train", bc.num_train), ("test", bc.num_test)):
        want = full if cfg.max_examples is None else min(cfg.max_examples, full)
        have = builder.info.splits[split].num_examples
        if have < want:
            raise DataError(
                f"`max_examples`: {builder.data_dir} already holds a build with {have} "
                f"sequences in its {split} split, fewer than the {want} asked for (max_examples="
                f"{cfg.max_examples}); rebuild it (`hgn data build --rebuild`, which deletes "
                "it first) or give another `--data-dir`.", "max_examples")


def build(cfg: DataConfig, num_workers: int | None = None, *, exact: bool = False,
          rebuild: bool = False):
    """Build the dataset if needed; returns the TFDS builder. Idempotent and restart-safe.

    TFDS writes into a temporary folder and renames it only when complete, so a killed build
    leaves no half dataset behind: the next call starts it again (and deletes the killed one's
    `incomplete.*` folder, see `_remove_incomplete`).

    Args:
      exact: a build already on disk with fewer sequences than `cfg.max_examples` asks for (a
        smaller earlier build) is a DataError instead of being used as it is.
      rebuild: delete the build on disk first (this config and version only).
    """
    builder = _builder(cfg, num_workers)
    if rebuild and builder.is_prepared():
        shutil.rmtree(builder.data_dir)
        builder = _builder(cfg, num_workers)
    if exact and builder.is_prepared():
        _check_size(cfg, builder)
    config = None
    if cfg.max_examples is not None:
        config = tfds.download.DownloadConfig(max_examples_per_split=cfg.max_examples)
    builder.download_and_prepare(download_config=config)
    _remove_incomplete(builder)
    return builder


def _remove_incomplete(builder) -> None:
    """Delete what killed builds of this config and version left (TFDS's `incomplete.*` folders).

    Called once the build is complete. Two processes building the same dataset into the same
    data dir at once are not supported (by TFDS either: both would rename into one folder).
    """
    version_dir = pathlib.Path(builder.data_dir)
    for leftover in version_dir.parent.glob(f"incomplete.*_{version_dir.name}"):
        shutil.rmtree(leftover, ignore_errors=True)


def _tfds_split(cfg: DataConfig, split: str) -> str:
    if split not in SPLITS:
        raise DataError(f"`split` must be one of {SPLITS}, got {split!r}.", "split")
    if split == "test":
        return "test"
    if cfg.validation_fraction == 0:
        if split == "validation":
            raise DataError("`split='validation'` needs `validation_fraction` > 0, got 0.",
                            "validation_fraction")
        return "train"
    pct = round(100 * (1 - cfg.validation_fraction))
    return f"train[:{pct}%]" if split == "train" else f"train[{pct}%:]"


def load(cfg: DataConfig, split: str, *, shuffle_files: bool = False,
         keys=("frames",)) -> tf.data.Dataset:
    """The split as a dataset of dicts with `keys`; frames as float32 in [0, 1], cut to n_frames."""
    builder = build(cfg)
    # The frames are stored zlib-compressed. TFDS 4.9.10's own Tensor decoder reads its deprecated
    # `FeatureConnector.dtype` for such features (tensor_feature.py, `decode_example`) and logs a
    # deprecation warning for every dataset; the same three ops are done here instead.
    frames_shape = builder.info.features["frames"].shape
    ds = builder.as_dataset(split=_tfds_split(cfg, split), shuffle_files=shuffle_files,
                            read_config=tfds.ReadConfig(shuffle_seed=0),
                            decoders={"frames": tfds.decode.SkipDecoding()})
    n = cfg.n_frames

    def prepare(ex):
        out = {}
        for k in keys:
            v = ex[k]
            if k == "frames":
                v = tf.io.decode_raw(tf.io.decode_compressed(v, "ZLIB"), tf.uint8)
                v = tf.cast(tf.reshape(v, frames_shape)[:n], tf.float32) / 255.0
            elif k in ("q", "p", "q_noisy", "p_noisy", "energy", "t"):
                v = v[:n]
            out[k] = v
        return out

    return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)


def load_arrays(cfg: DataConfig, split: str, keys=("frames",), limit: int | None = None) -> dict:
    """A split as numpy arrays (for evaluation and pictures)."""
    ds = load(cfg, split, keys=keys)
    if limit is not None:
        ds = ds.take(limit)
    batches = list(ds.batch(256).as_numpy_iterator())
    if not batches:
        raise DataError(f"Split {split!r} of {cfg.tfds_name} is empty.", "split")
    return {k: np.concatenate([b[k] for b in batches]) for k in keys}


# Passes with distinct shuffles before the orders repeat (a pipeline with `repeat`).
SHUFFLE_CYCLE = 32


def pipeline(ds: tf.data.Dataset, batch_size: int, *, shuffle_buffer: int = 0, seed: int = 0,
             repeat: bool = False, frames_only: bool = True, start: int = 0) -> tf.data.Dataset:
    """Shuffle (seeded), repeat, batch (drop remainder), prefetch.

    With `repeat`, pass e over the data is shuffled with the seed `seed * 1000003 + e mod
    SHUFFLE_CYCLE`, so the stream is a function of `seed` and TensorFlow's global seed (which
    `hgn_tf.train.train` sets) alone, not of what the process ran before (a
    `reshuffle_each_iteration` shuffle draws from a generator that datasets with the same seed
    share, so its order depends on them). `start` (a resumed run: steps done x batch size)
    begins the stream at that position of the same sequence: earlier passes are not read, and at
    most one pass is read and skipped.

    No `cache()`: the float frames of the paper's training split would take ~17.5 GB of memory,
    and decoding the zlib-compressed records (~4,000 sequences/s on 2 cores) already outpaces
    training by far.
    """
    if frames_only:
        ds = ds.map(lambda ex: ex["frames"], num_parallel_calls=tf.data.AUTOTUNE)
    if repeat:
        size = int(ds.cardinality())
        first, offset = divmod(start, size) if size > 0 else (0, start)
        passes = [ds.shuffle(shuffle_buffer, seed=seed * 1_000_003 + e,
                             reshuffle_each_iteration=False) if shuffle_buffer else ds
                  for e in range(SHUFFLE_CYCLE if shuffle_buffer else 1)]
        first %= len(passes)
        head = functools.reduce(tf.data.Dataset.concatenate, passes[first:])
        cycle = functools.reduce(tf.data.Dataset.concatenate, passes)
        ds = head.concatenate(cycle.repeat()).skip(offset)
    else:
        if shuffle_buffer:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        ds = ds.skip(start)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
