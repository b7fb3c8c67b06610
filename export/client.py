"""A client of the REST predict API (this package's server or TensorFlow Serving itself).

urllib, numpy and orjson only, so it runs where TensorFlow is not installed; `rollout_to_gif`
also uses `hgn_tf.plots` (numpy and Pillow). orjson writes the request's arrays and reads the
answer's without a Python object per number: for a batch-1 30-frame rollout (1.2 MB of JSON)
~10 ms against ~60 ms for the standard library's json.

    from hgn_tf.export.client import predict, rollout_to_gif
    out = predict("http://127.0.0.1:8501", "rollout",
                  {"frames": frames_uint8, "n_steps": 30, "dt": 0.125})
    out["frames"].shape          # (B, 30, 32, 32, 3), float32 in [0, 1]
    rollout_to_gif("http://127.0.0.1:8501", "frames.npy", "rollout.gif", n_steps=30)
"""

from __future__ import annotations

import json
import pathlib
import urllib.error
import urllib.request

import numpy as np
import orjson

from hgn_tf.errors import ConfigError, DataError

__all__ = ["ServerError", "metadata", "predict", "rollout_to_gif"]


class ServerError(Exception):
    """The server answered with an HTTP error; `status` is its code, the message its `error`."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def _model_url(url: str, model_name: str, version: int | None) -> str:
    base = f"{url.rstrip('/')}/v1/models/{model_name}"
    return base if version is None else f"{base}/versions/{version}"


def _request(url: str, body: dict | None, timeout: float):
    data = None if body is None else orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as e:
        text = e.read().decode(errors="replace")
        try:
            message = json.loads(text)["error"]
        except (ValueError, KeyError, TypeError):
            message = text or e.reason
        raise ServerError(e.code, message) from None


def _to_json(value):
    """A value orjson writes (it takes numpy scalars, and arrays in C order only)."""
    return np.ascontiguousarray(value) if isinstance(value, np.ndarray) else value


def predict(url: str, signature: str, inputs: dict, model_name: str = "hgn",
            version: int | None = None, timeout: float = 120.0):
    """Call `signature` with named `inputs` (numpy arrays or numbers) in the columnar format.

    Args:
      url: the server's root, e.g. "http://127.0.0.1:8501".
      signature: "rollout", "rollout_frames", "sample", "encode", "decode" or "hamiltonian".
      inputs: {input name: value}; uint8 frames are sent as integers.
      version: a model version; None asks for the latest.
    Returns:
      {output name: float32 array} -- or one array for a single-output signature
      (rollout_frames, decode, hamiltonian), which TF Serving answers without the name.
    Raises:
      ServerError: the server refused the request (its message names the bad field).
      urllib.error.URLError: the server could not be reached.
    """
    body = {"signature_name": signature, "inputs": {k: _to_json(v) for k, v in inputs.items()}}
    outputs = _request(_model_url(url, model_name, version) + ":predict", body, timeout)["outputs"]
    if isinstance(outputs, dict):
        return {k: np.asarray(v, np.float32) for k, v in outputs.items()}
    return np.asarray(outputs, np.float32)


def metadata(url: str, model_name: str = "hgn", version: int | None = None,
             timeout: float = 30.0) -> dict:
    """The model's metadata: signature defs (and, from this package's server, `hgn_export`)."""
    return _request(_model_url(url, model_name, version) + "/metadata", None, timeout)


def _load_frames(frames_path) -> np.ndarray:
    path = pathlib.Path(frames_path)
    if path.suffix != ".npy" or not path.is_file():
        raise DataError(f"`frames_path` must be an existing .npy file, got {str(path)!r}.")
    frames = np.load(path)
    if frames.dtype != np.uint8 or frames.ndim not in (4, 5) or frames.shape[-1] != 3:
        raise DataError(f"`frames_path` {str(path)!r} must hold uint8 frames [k, H, W, 3] or "
                        f"[B, k, H, W, 3], got {frames.dtype} {list(frames.shape)}.")
    return frames[None] if frames.ndim == 4 else frames


def rollout_to_gif(url: str, frames_path, out_gif, n_steps: int = 30, dt: float | None = None,
                   model_name: str = "hgn", timeout: float = 300.0) -> pathlib.Path:
    """Ask the server to roll out the conditioning frames in `frames_path`; write a GIF.

    Args:
      frames_path: a .npy file of uint8 frames [k, H, W, 3] or [B, k, H, W, 3].
      out_gif: the GIF to write (the B rollouts side by side).
      n_steps: frames to produce.
      dt: the integrator step (negative: backward). None takes the model's training dt from the
        server's metadata (this package's server gives it; TF Serving does not: pass `dt` there).
    Returns:
      The GIF's path.
    """
    from hgn_tf import plots

    frames = _load_frames(frames_path)
    meta = metadata(url, model_name, timeout=timeout)
    if dt is None:
        info = meta.get("hgn_export", {})
        if "dt" not in info:
            raise ConfigError("`dt` is needed: the server does not say the model's dt "
                              "(TF Serving's metadata lacks it); pass dt, e.g. 0.125.")
        dt = info["dt"]
    # Only the frames are shown: ask for them alone where the model has that signature (exports
    # before it have only `rollout`, which also computes the energy and returns the states).
    defs = meta.get("metadata", {}).get("signature_def", {}).get("signature_def", {})
    signature = "rollout_frames" if "rollout_frames" in defs else "rollout"
    out = predict(url, signature, {"frames": frames, "n_steps": int(n_steps), "dt": float(dt)},
                  model_name=model_name, timeout=timeout)
    return plots.sequences_gif(out if signature == "rollout_frames" else out["frames"], out_gif)
