"""TensorFlow Serving's REST predict API for an exported HGN, on werkzeug.

This module loads the artifact only: it imports tensorflow, numpy and werkzeug (and the protobuf
that ships with tensorflow), never hgn_tf's model or training code. What it knows about the model
(resolution, conditioning frames, caps) it reads from `<version>/assets/hgn_export.json`; a
SavedModel without that file is served too, with only the dtype and shape checks.

Endpoints (as TF Serving's REST API; `<v>` picks a version, otherwise the latest one on disk,
looked up on every request, so a newly exported version is served without a restart):

    GET  /v1/models/<name>[/versions/<v>]            status of the loaded versions
    GET  /v1/models/<name>[/versions/<v>]/metadata   the signature defs (+ "hgn_export")
    POST /v1/models/<name>[/versions/<v>]:predict    run a signature

Predict requests, both of TF Serving's formats:

    columnar: {"signature_name": "rollout",
               "inputs": {"frames": [[[[[0, ...]]]]], "n_steps": 30, "dt": 0.125}}
              -> {"outputs": {"frames": [...], "q": [...], "p": [...], "energy": [...]}}
    row:      {"signature_name": "rollout",
               "instances": [{"frames": <[k, H, W, 3]>, "n_steps": 30, "dt": 0.125}, ...]}
              -> {"predictions": [{"frames": <[n_steps, H, W, 3]>, "q": ..., ...}, ...]}

In the row format each instance holds one example: inputs with a batch axis (frames, q, p) are
given without it and stacked; scalar inputs (n_steps, dt, n, seed) are one value for the whole
call, so every instance must repeat the same value (a mismatch is a 400). The outputs are split
along their first axis into the predictions (for `sample`, which has no batched input, there are
`n` predictions). As in TF Serving, a signature with a single output (decode, hamiltonian)
answers the bare value: {"outputs": [...]} and {"predictions": [v0, v1, ...]}; a signature with a
single input also takes a bare value for "inputs" and bare values as instances.

Errors are JSON {"error": "..."}: 400 for a bad request (malformed JSON, unknown signature or
input, missing input, wrong dtype, shape or image size, NaN or infinity, pixels outside [0, 255],
n_steps outside [1, max_steps], a batch beyond max_batch, dt or a state outside the value contract
of `hgn_tf.export.limits`, batch x n_steps beyond max_batch_steps, an answer estimated beyond
max_response_bytes), naming the field or the limit; 404 for an unknown model name or version;
408 for a body that stops arriving; 413 for a body over `max_request_bytes`; 422 for a call inside
the contract whose output is not finite (a learned Hamiltonian that diverged): never a 200 with
NaN or infinity. The server keeps serving after any of them. Model calls are limited to
`max_concurrent_calls` at a time (1 by default: one call's activations in memory at once);
parsing and answering run on the request threads.

Connections (`start_server`, `serve`): a connection silent for `read_timeout` seconds (while the
request line, the headers or the body should arrive, or between keep-alive requests) is closed;
at most `max_connections` are open at once, one thread each; beyond that a new connection gets a
503 and is closed at once, without a thread. Both bound the threads and memory that idle or
stalled clients can hold.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import gc
import json
import math
import pathlib
import re
import socket
import threading

import numpy as np
import orjson
import tensorflow as tf
from hgn_tf.export.limits import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_BATCH_STEPS,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_STEPS,
    DEFAULT_READ_TIMEOUT,
    EXPORT_INFO_FILE,
    MAX_ABS_STATE,
    MAX_DT_FACTOR,
    NON_FINITE_OUTPUT,
    RESPONSE_BYTES_PER_VALUE,
)
from werkzeug.exceptions import HTTPException, RequestTimeout
from werkzeug.routing import BaseConverter, Map, Rule
from werkzeug.serving import (
    ThreadedWSGIServer,
    WSGIRequestHandler,
    get_sockaddr,
    select_address_family,
)
from werkzeug.wrappers import Request, Response

from hgn_tf.errors import ExportError, ServingInputError, check, positive_int

# A bad predict request: answered with HTTP 400 and the message, which names the field.
InputError = ServingInputError

__all__ = ["InputError", "ModelServer", "NotFoundError", "OutputError", "as_input_array",
           "check_values", "serve", "start_server"]


_INT_RANGES = {tf.uint8: (0, 255), tf.int32: (-(2**31), 2**31 - 1)}


class NotFoundError(LookupError):
    """An unknown model name or version; answered with HTTP 404."""


class OutputError(ServingInputError):
    """A valid call whose output is not finite; answered with HTTP 422, naming the output."""


class _ModelNameConverter(BaseConverter):
    # A model name stops at ':' so that "/v1/models/hgn:predict" routes to predict.
    regex = r"[^/:]+"


def _version_dirs(model_dir: pathlib.Path) -> list[int]:
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir()
                  if p.name.isdigit() and (p / "saved_model.pb").exists())


def _signature_defs(version_dir: pathlib.Path) -> dict:
    """The serving signature defs as TF Serving's metadata JSON shows them."""
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    defs = saved.meta_graphs[0].signature_def
    return {name: json_format.MessageToDict(defs[name], preserving_proto_field_name=True)
            for name in sorted(defs) if not name.startswith("__")}


def _shape_text(name: str, spec: tf.TensorSpec) -> str:
    labels = {0: "batch", 1: "frames"} if name == "frames" else {0: "batch"}
    dims = spec.shape.as_list()
    return "[" + ", ".join(labels.get(i, "?") if d is None else str(d)
                           for i, d in enumerate(dims)) + "]"


def _expected(name: str, spec: tf.TensorSpec) -> str:
    if spec.shape.rank == 0:
        return f"a scalar of type {spec.dtype.name}"
    return f"an array of type {spec.dtype.name} and shape {_shape_text(name, spec)}"


def as_input_array(name: str, value, spec: tf.TensorSpec) -> np.ndarray:
    """A JSON value -> a numpy array of `spec`'s dtype and shape, or InputError naming `name`."""
    if value is None or isinstance(value, (str, bytes, dict)):
        raise InputError(f"`{name}` must be {_expected(name, spec)}, got "
                         f"{type(value).__name__} {value!r:.40}.")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        raise InputError(f"`{name}` is not a rectangular array (nested lists of unequal "
                         f"lengths); expected {_expected(name, spec)}.") from None
    if arr.dtype.kind not in "iuf":
        got = "booleans" if arr.dtype.kind == "b" else "non-numeric values"
        raise InputError(f"`{name}` must hold numbers ({_expected(name, spec)}), got {got}.")
    want = spec.shape.as_list()
    if arr.ndim != len(want):
        raise InputError(f"`{name}` must be {_expected(name, spec)}, got shape "
                         f"{list(arr.shape)}.")
    if name == "frames" and len(want) == 5 and list(arr.shape[2:4]) != want[2:4]:
        raise InputError(f"`frames`: images must be {want[2]}x{want[3]} (the model's resolution), "
                         f"got {arr.shape[2]}x{arr.shape[3]}.")
    for i, (w, g) in enumerate(zip(want, arr.shape, strict=True)):
        if w is not None and w != g:
            raise InputError(f"`{name}` must be {_expected(name, spec)}, got shape "
                             f"{list(arr.shape)} (axis {i} is {g}, not {w}).")
    if spec.dtype.is_integer:
        if arr.dtype.kind == "f":
            what = "integer pixels in [0, 255]" if spec.dtype == tf.uint8 else "integers"
            raise InputError(f"`{name}` must hold {what} ({spec.dtype.name}), got "
                             "floating-point values.")
        lo, hi = _INT_RANGES[spec.dtype]
        if arr.size and (arr.min() < lo or arr.max() > hi):
            what = "pixel values" if spec.dtype == tf.uint8 else "values"
            got = arr.item() if arr.ndim == 0 else f"values in [{arr.min()}, {arr.max()}]"
            raise InputError(f"`{name}`: {what} must be in [{lo}, {hi}], got {got}.")
        return arr.astype(spec.dtype.as_numpy_dtype)
    with np.errstate(over="ignore"):
        arr = arr.astype(spec.dtype.as_numpy_dtype)
    if not np.isfinite(arr).all():
        raise InputError(f"`{name}` must be finite, got NaN or infinity "
                         f"(or a value beyond {spec.dtype.name}'s range).")
    return arr


def _assert_message(error: tf.errors.InvalidArgumentError) -> str:
    """The message of the graph's failed tf.debugging assert, without TF's stack decoration."""
    found = re.search(r"assertion failed: \[(.*?)\]", error.message)
    if found:
        return found.group(1)
    found = re.search(r"^(.*?) : Tensor had (NaN|Inf) values", error.message, re.MULTILINE)
    if found:  # tf.debugging.assert_all_finite (CheckNumerics)
        return f"{found.group(1)}; got {found.group(2)}."
    return error.message.strip().splitlines()[0]


class ServableVersion:
    """One loaded version: its signatures, input specs, export info and metadata."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.version = int(path.name)
        self.loaded = tf.saved_model.load(str(path))
        self.signatures = dict(self.loaded.signatures)
        self.input_specs = {name: dict(fn.structured_input_signature[1])
                            for name, fn in self.signatures.items()}
        self.output_specs = {name: dict(fn.structured_outputs)
                             for name, fn in self.signatures.items()}
        info_path = path / "assets" / EXPORT_INFO_FILE
        self.info = json.loads(info_path.read_text()) if info_path.exists() else {}
        self.signature_defs = _signature_defs(path)

    def call(self, signature: str, feeds: dict) -> dict:
        out = self.signatures[signature](**{k: tf.constant(v) for k, v in feeds.items()})
        return {k: v.numpy() for k, v in sorted(out.items())}


class ModelServer:
    """A WSGI application serving the versions under `model_dir` as model `model_name`.

    Args:
      model_dir: the export's base folder (integer-named version folders).
      model_name: the name in the URLs.
      max_steps, max_batch: caps on `n_steps` and on the batch (`n`); the export's own caps (in
        hgn_export.json) apply too, the smaller wins.
      max_batch_steps: cap on batch x n_steps (frames rolled out) per call.
      max_response_bytes: cap on a call's answer, estimated from the output shapes before the
        call (RESPONSE_BYTES_PER_VALUE bytes a value).
      max_concurrent_calls: model calls running at once.
      max_request_bytes: larger request bodies are refused with 413.
    Raises:
      ExportError: `model_dir` has no version, or a cap is not a positive integer.
    """

    def __init__(self, model_dir, model_name: str = "hgn", *, max_steps: int = DEFAULT_MAX_STEPS,
                 max_batch: int = DEFAULT_MAX_BATCH,
                 max_batch_steps: int = DEFAULT_MAX_BATCH_STEPS,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                 max_concurrent_calls: int = 1,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES):
        for arg, value in (("max_steps", max_steps), ("max_batch", max_batch),
                           ("max_batch_steps", max_batch_steps),
                           ("max_response_bytes", max_response_bytes),
                           ("max_concurrent_calls", max_concurrent_calls),
                           ("max_request_bytes", max_request_bytes)):
            positive_int(arg, value, ExportError)
        check(bool(re.fullmatch(_ModelNameConverter.regex, model_name)), "model_name", model_name,
              "a name without '/' or ':'", ExportError)
        self.model_dir = pathlib.Path(model_dir)
        if not _version_dirs(self.model_dir):
            raise ExportError(f"`model_dir` {str(self.model_dir)!r} holds no SavedModel version "
                              "(a folder named by an integer with a saved_model.pb); write one "
                              "with `hgn export --run-dir R --out DIR`.", "model_dir")
        self.model_name = model_name
        self.max_steps, self.max_batch = max_steps, max_batch
        self.max_batch_steps, self.max_response_bytes = max_batch_steps, max_response_bytes
        self.max_request_bytes = max_request_bytes
        self._versions: dict[int, ServableVersion] = {}
        self._load_lock = threading.Lock()
        self._calls = threading.BoundedSemaphore(max_concurrent_calls)
        self._urls = Map([
            Rule("/v1/models/<model:name>", methods=["GET"], endpoint="status"),
            Rule("/v1/models/<model:name>/versions/<int:version>", methods=["GET"],
                 endpoint="status"),
            Rule("/v1/models/<model:name>/metadata", methods=["GET"], endpoint="metadata"),
            Rule("/v1/models/<model:name>/versions/<int:version>/metadata", methods=["GET"],
                 endpoint="metadata"),
            Rule("/v1/models/<model:name>:predict", methods=["POST"], endpoint="predict"),
            Rule("/v1/models/<model:name>/versions/<int:version>:predict", methods=["POST"],
                 endpoint="predict"),
        ], converters={"model": _ModelNameConverter})
        self.servable()  # load the latest version now: a broken export fails at start-up

    # ------------------------------------------------------------------ versions
    def servable(self, version: int | None = None) -> ServableVersion:
        """The loaded `version` (None: the latest on disk); NotFoundError when there is none."""
        on_disk = _version_dirs(self.model_dir)
        if version is None:
            if not on_disk:
                raise NotFoundError(f"no version of model {self.model_name!r} is on disk")
            version = on_disk[-1]
        if version not in self._versions:
            if version not in on_disk:
                raise NotFoundError(f"version {version} of model {self.model_name!r} not found "
                                  f"(available: {on_disk})")
            with self._load_lock:
                if version not in self._versions:
                    self._versions[version] = ServableVersion(self.model_dir / str(version))
                    # A loaded SavedModel is hundreds of thousands of Python objects that live
                    # as long as the server. Python's full garbage collections, which the
                    # ~30,000 lists of every JSON answer trigger, walked all of them: ~300 ms
                    # added to every other call. Frozen, they are left out of collections.
                    gc.collect()
                    gc.freeze()
        return self._versions[version]

    def caps(self, servable: ServableVersion) -> tuple[int, int]:
        """(max_steps, max_batch): the server's and the export's caps, the smaller."""
        return (min(self.max_steps, servable.info.get("max_steps", self.max_steps)),
                min(self.max_batch, servable.info.get("max_batch", self.max_batch)))

    # ------------------------------------------------------------------ WSGI
    def __call__(self, environ, start_response):
        request = Request(environ)
        request.max_content_length = self.max_request_bytes
        try:
            endpoint, args = self._urls.bind_to_environ(environ).match()
            if args["name"] != self.model_name:
                raise NotFoundError(f"Servable not found for request: model {args['name']!r} "
                                  f"(this server has {self.model_name!r})")
            handler = getattr(self, f"_{endpoint}")
            response = _json_response(200, handler(request, args.get("version")))
        except OutputError as e:
            response = _json_response(422, {"error": str(e)})
        except InputError as e:
            response = _json_response(400, {"error": str(e)})
        except NotFoundError as e:
            response = _json_response(404, {"error": str(e)})
        except HTTPException as e:
            response = _json_response(e.code or 500, {"error": e.description or e.name})
        # A fault of the server, not of the request: say so and keep serving.
        except Exception as e:  # noqa: BLE001
            response = _json_response(500, {"error": f"{type(e).__name__}: {e}"})
        return response(environ, start_response)

    def _status(self, request, version):
        if version is not None:
            shown = [self.servable(version)]
        else:
            self.servable()
            shown = [self._versions[v] for v in sorted(self._versions, reverse=True)]
        return {"model_version_status": [
            {"version": str(s.version), "state": "AVAILABLE",
             "status": {"error_code": "OK", "error_message": ""}} for s in shown]}

    def _metadata(self, request, version):
        s = self.servable(version)
        return {"model_spec": {"name": self.model_name, "signature_name": "",
                               "version": str(s.version)},
                "metadata": {"signature_def": {"signature_def": s.signature_defs}},
                # Not in TF Serving's answer: what this server read from hgn_export.json.
                "hgn_export": s.info}

    def _predict(self, request, version):
        s = self.servable(version)
        body = _parse_body(request)
        signature, feeds, rows = self._feeds(s, body)
        max_steps, max_batch = self.caps(s)
        check_values(feeds, s.info, max_steps, max_batch)
        estimate = self._check_work(s, signature, feeds)
        try:
            with self._calls:
                outputs = s.call(signature, feeds)
        except tf.errors.InvalidArgumentError as e:  # the graph's own asserts
            message = _assert_message(e)
            raise (OutputError if NON_FINITE_OUTPUT in message else InputError)(message) from None
        for name, value in outputs.items():  # exports without the graph's output checks too
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise OutputError(
                    f"`{name}` {NON_FINITE_OUTPUT} for these inputs (the learned dynamics "
                    "diverged: use a smaller |dt| or fewer n_steps).", name)
        if estimate > _TRIM_ABOVE_BYTES:
            threading.Thread(target=_release_memory, daemon=True).start()
        if rows:
            n = len(next(iter(outputs.values())))
            if len(outputs) == 1:
                return {"predictions": [_json_value(row) for row in next(iter(outputs.values()))]}
            return {"predictions": [{k: _json_value(v[i]) for k, v in outputs.items()}
                                    for i in range(n)]}
        if len(outputs) == 1:
            return {"outputs": _json_value(next(iter(outputs.values())))}
        return {"outputs": {k: _json_value(v) for k, v in outputs.items()}}

    def _check_work(self, s: ServableVersion, signature: str, feeds: dict) -> int:
        """The answer's estimated size in bytes; InputError naming the cap it would exceed."""
        batch = next((int(a.shape[0]) for a in feeds.values() if a.ndim >= 1),
                     int(feeds["n"]) if "n" in feeds else 1)
        steps = int(feeds["n_steps"]) if "n_steps" in feeds else 1
        if batch * steps > self.max_batch_steps:
            raise InputError(f"batch x `n_steps` = {batch} x {steps} = {batch * steps} exceeds "
                             f"max_batch_steps={self.max_batch_steps} (frames rolled out per "
                             "call); split the request.", "n_steps")
        values = 0
        for spec in s.output_specs[signature].values():
            dims, free = 1, [batch, steps]
            for d in spec.shape.as_list():
                dims *= d if d is not None else (free.pop(0) if free else 1)
            values += dims
        estimate = values * RESPONSE_BYTES_PER_VALUE
        if estimate > self.max_response_bytes:
            raise InputError(f"the answer would be about {estimate / 2**20:.0f} MiB ({values} "
                             f"values), beyond max_response_bytes={self.max_response_bytes}; ask "
                             "for fewer steps or a smaller batch.", "max_response_bytes")
        return estimate

    def _feeds(self, s: ServableVersion, body: dict):
        """(signature name, {input: array}, row format?) of a parsed request body."""
        unknown = sorted(set(body) - {"signature_name", "inputs", "instances"})
        if unknown:
            raise InputError(f"unknown request field(s) {unknown}; a predict request has "
                             "`signature_name` and one of `inputs` (columnar) or `instances` "
                             "(row).")
        signature = body.get("signature_name")
        if signature is not None and not isinstance(signature, str):
            raise InputError(f"`signature_name` must be a string, one of {sorted(s.signatures)}; "
                             f"got {type(signature).__name__} {json.dumps(signature):.60}.")
        if signature not in s.signatures:
            problem = "is missing" if signature is None else f"{signature!r} is unknown"
            raise InputError(f"`signature_name` {problem}; this model's signatures are "
                             f"{sorted(s.signatures)}.")
        if ("inputs" in body) == ("instances" in body):
            raise InputError("give exactly one of `inputs` (columnar) or `instances` (row format).")
        specs = s.input_specs[signature]
        if "inputs" in body:
            values, rows = body["inputs"], False
            if not isinstance(values, dict) and len(specs) == 1:
                values = {next(iter(specs)): values}
        else:
            values, rows = _columns_of_instances(body["instances"], specs), True
        if not isinstance(values, dict):
            raise InputError(f"`inputs` must be an object mapping input names {sorted(specs)} "
                             "to values.")
        extra = sorted(set(values) - set(specs))
        if extra:
            raise InputError(f"unknown input(s) {extra} for signature {signature!r}; its inputs "
                             f"are {sorted(specs)}.")
        missing = [name for name in specs if name not in values]
        if missing:
            raise InputError(f"missing input(s) {missing} for signature {signature!r}; its inputs "
                             f"are {sorted(specs)}.")
        return signature, {n: as_input_array(n, values[n], spec) for n, spec in specs.items()}, rows


def check_values(feeds: dict, info: dict, max_steps: int, max_batch: int) -> None:
    """The value checks the exported graph also makes, done first for a clear 400.

    The value contract (`hgn_tf.export.limits`): |dt| <= the export's max_abs_dt (MAX_DT_FACTOR x
    its training dt), states with |values| <= max_abs_state. An export without them in its
    hgn_export.json gets the same defaults from its `dt`.
    """
    if "dt" in feeds:
        dt = float(feeds["dt"])
        max_dt = info.get("max_abs_dt", MAX_DT_FACTOR * info["dt"] if "dt" in info else math.inf)
        if not abs(dt) <= max_dt:
            raise InputError(f"`dt` must be in [-{max_dt:g}, {max_dt:g}] (|dt| at most "
                             f"{MAX_DT_FACTOR:g}x the training dt; negative runs backward), "
                             f"got {dt:g}.")
    max_state = info.get("max_abs_state", MAX_ABS_STATE)
    for name in ("q", "p"):
        arr = feeds.get(name)
        if arr is not None and arr.size and float(np.abs(arr).max()) > max_state:
            raise InputError(f"`{name}`: values must be in [-{max_state:g}, {max_state:g}] "
                             f"(a state as `encode` or `rollout` returns), got "
                             f"{float(np.abs(arr).max()):g} in absolute value.")
    batches = {}
    for name, arr in feeds.items():
        if arr.ndim >= 1:
            batches[name] = b = arr.shape[0]
            if b < 1:
                raise InputError(f"`{name}`: the batch is empty; give at least one example.")
            if b > max_batch:
                raise InputError(f"`{name}`: a batch of {b} exceeds max_batch={max_batch}; split "
                                 "the request.")
    if "q" in batches and "p" in batches and batches["q"] != batches["p"]:
        raise InputError(f"`p`: batch of {batches['p']} differs from `q`'s {batches['q']}.")
    if "n_steps" in feeds and not 1 <= int(feeds["n_steps"]) <= max_steps:
        raise InputError(f"`n_steps` must be in [1, {max_steps}], got {int(feeds['n_steps'])}.")
    if "n" in feeds and not 1 <= int(feeds["n"]) <= max_batch:
        raise InputError(f"`n` must be in [1, {max_batch}] (max_batch), got {int(feeds['n'])}.")
    k = info.get("conditioning_frames")
    frames = feeds.get("frames")
    if k and frames is not None and frames.ndim == 5 and frames.shape[1] < k:
        raise InputError(f"`frames`: the encoder reads the first {k} frames of each sequence, "
                         f"got {frames.shape[1]}.")


def _columns_of_instances(instances, specs: dict) -> dict:
    """Row format -> columnar: batched inputs stacked, scalar inputs shared by every instance."""
    if not isinstance(instances, list) or not instances:
        raise InputError("`instances` must be a non-empty list (one entry per example).")
    names = list(specs)
    if len(names) == 1 and not all(isinstance(i, dict) for i in instances):
        instances = [{names[0]: i} for i in instances]
    columns = {}
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise InputError(f"`instances[{i}]` must be an object mapping input names "
                             f"{sorted(specs)} to values.")
        for name, value in instance.items():
            columns.setdefault(name, []).append(value)
    for name, values in columns.items():
        if len(values) != len(instances):
            raise InputError(f"`{name}` must be given in every instance (it is missing from "
                             f"{len(instances) - len(values)} of {len(instances)}).")
        spec = specs.get(name)
        if spec is not None and spec.shape.rank == 0:
            if any(v != values[0] for v in values[1:]):
                raise InputError(f"`{name}` is one value for the whole call: every instance must "
                                 f"give the same, got {sorted(set(map(repr, values)))}.")
            columns[name] = values[0]
    return columns


def _parse_body(request: Request) -> dict:
    try:
        data = request.get_data(cache=False)  # 413 past max_content_length
    except (TimeoutError, ConnectionError):
        raise RequestTimeout("the request body stopped arriving (read timeout).") from None
    try:
        body = json.loads(data)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError
        raise InputError(f"malformed JSON request body: {e}") from None
    if not isinstance(body, dict):
        raise InputError("the request body must be a JSON object with `signature_name` and "
                         "`inputs` or `instances`.")
    return body


def _json_value(value):
    """An output as orjson writes it: an array in C order (a row of a batch may not be), a
    numpy scalar (one row of a [B] output) as it is."""
    return np.ascontiguousarray(value) if isinstance(value, np.ndarray) else value


def _json_response(status: int, payload: dict) -> Response:
    # orjson writes numpy arrays directly (float32 in its shortest exact form: half the bytes of
    # json's 17 digits, 5 ms instead of 55 for a batch-1 rollout's answer). It would write NaN
    # as null: an answer is checked finite before it gets here (`_predict`), so every answer is
    # the exact values or no answer.
    return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), status=status,
                    mimetype="application/json")


# After an answer estimated above this, hand freed memory back to the OS (glibc keeps it).
_TRIM_ABOVE_BYTES = 16 * 2**20
_LIBC = ctypes.util.find_library("c")


def _release_memory() -> None:
    if _LIBC:
        try:
            ctypes.CDLL(_LIBC).malloc_trim(0)
        except (OSError, AttributeError):  # not glibc
            pass


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass

    def log_error(self, *args, **kwargs):  # "Request timed out" of stalled clients
        pass


_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
         b"Connection: close\r\nContent-Length: 55\r\n\r\n"
         b'{"error": "too many open connections; try again later"}')


_LISTEN_BACKLOG = 512


class _Server(ThreadedWSGIServer):
    """werkzeug's threaded server with a read timeout and a cap on open connections."""

    def __init__(self, host, port, app, handler, *, fd: int, read_timeout: float,
                 max_connections: int):
        handler = type("_Handler", (handler,), {"timeout": read_timeout})
        super().__init__(host, port, app, handler, fd=fd)
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):  # full: answer 503 without a thread
            try:
                request.settimeout(1.0)
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _make_server(app, host: str, port: int, handler, read_timeout: float,
                 max_connections: int) -> _Server:
    check(isinstance(port, int) and not isinstance(port, bool) and 0 <= port <= 65535, "port",
          port, "an integer in [0, 65535] (0: any free port)", ExportError)
    check(isinstance(read_timeout, (int, float)) and 0 < read_timeout < math.inf, "read_timeout",
          read_timeout, "a positive number of seconds", ExportError)
    positive_int("max_connections", max_connections, ExportError)
    check(isinstance(host, str) and not host.startswith("unix://"), "host", host,
          "an IP address or a host name", ExportError)
    # Bound here, not by werkzeug, which prints a bind error and exits the process.
    family = select_address_family(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(get_sockaddr(host, port, family))
        sock.listen(_LISTEN_BACKLOG)
        return _Server(host, port, app, handler, fd=sock.fileno(), read_timeout=read_timeout,
                       max_connections=max_connections)
    except socket.gaierror as e:
        raise ExportError(f"`host` {host!r} is not an address of this machine ({e.strerror}); "
                          "give an IP address or a name such as 127.0.0.1 or localhost.",
                          "host") from None
    except OSError as e:
        field = "port" if e.errno in (errno.EADDRINUSE, errno.EACCES) else "host"
        raise ExportError(f"cannot listen on `{field}` {host if field == 'host' else port!r} "
                          f"({e.strerror or e}); choose another {field}.", field) from None
    finally:
        sock.close()  # the server holds its own duplicate of the socket


def _url(host: str, port: int) -> str:
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def start_server(model_dir, model_name: str = "hgn", host: str = "127.0.0.1", port: int = 0,
                 *, max_steps: int = DEFAULT_MAX_STEPS, max_batch: int = DEFAULT_MAX_BATCH,
                 max_batch_steps: int = DEFAULT_MAX_BATCH_STEPS,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                 max_concurrent_calls: int = 1, read_timeout: float = DEFAULT_READ_TIMEOUT,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS, quiet: bool = True):
    """Serve in a background thread; returns (server, thread, url).

    `port=0` takes a free port (the URL says which). Stop with `server.shutdown();
    thread.join(); server.server_close()`.
    """
    app = ModelServer(model_dir, model_name, max_steps=max_steps, max_batch=max_batch,
                      max_batch_steps=max_batch_steps, max_response_bytes=max_response_bytes,
                      max_concurrent_calls=max_concurrent_calls)
    server = _make_server(app, host, port, _QuietHandler if quiet else WSGIRequestHandler,
                          read_timeout, max_connections)
    thread = threading.Thread(target=server.serve_forever, name="hgn-serve", daemon=True)
    thread.start()
    return server, thread, _url(host, server.port)


def serve(model_dir, model_name: str = "hgn", host: str = "127.0.0.1", port: int = 8501, *,
          max_steps: int = DEFAULT_MAX_STEPS, max_batch: int = DEFAULT_MAX_BATCH,
          max_batch_steps: int = DEFAULT_MAX_BATCH_STEPS,
          max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
          read_timeout: float = DEFAULT_READ_TIMEOUT,
          max_connections: int = DEFAULT_MAX_CONNECTIONS,
          ready_event: threading.Event | None = None):
    """Serve in this thread until Ctrl-C; prints the model's URL, then sets `ready_event`."""
    # The address is checked before the model loads: a bad --port fails at once.
    check(isinstance(port, int) and not isinstance(port, bool) and 0 <= port <= 65535, "port",
          port, "an integer in [0, 65535] (0: any free port)", ExportError)
    app = ModelServer(model_dir, model_name, max_steps=max_steps, max_batch=max_batch,
                      max_batch_steps=max_batch_steps, max_response_bytes=max_response_bytes)
    server = _make_server(app, host, port, WSGIRequestHandler, read_timeout, max_connections)
    print(f"serving {app.model_dir} at {_url(host, server.port)}/v1/models/{model_name} "
          "(Ctrl-C stops)", flush=True)
    if ready_event is not None:
        ready_event.set()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
