"""Files written whole or not at all: a temporary file in the same folder, then a rename
(`os.replace`, atomic on POSIX). A kill at any moment leaves the old file or the new one, never a
partial one. The standard library only (and a Keras model's own `save_weights`), so
every layer can use it (`hgn_tf.train` re-exports both)."""

from __future__ import annotations

import os
import pathlib
import uuid

__all__ = ["atomic_write_text", "save_weights"]


def atomic_write_text(path, text: str) -> None:
    """Write `text` to `path` through a temporary file in its folder and a rename.

    A kill at any moment leaves the old file or the new one, never a partial one.
    """
    path = pathlib.Path(path)
    # A fresh name ("x": never an existing file), created with the umask's permissions.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "x") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_weights(model, path) -> None:
    """`model.save_weights(path)`, atomically (a temporary file in the same folder + rename)."""
    path = pathlib.Path(path)
    # Keras wants the ".weights.h5" ending; the leading dot and pid keep it out of the way.
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        model.save_weights(str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
