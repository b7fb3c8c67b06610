"""The REST server over real HTTP on 127.0.0.1: TF Serving's status, metadata and predict API,
the same numbers as a direct SavedModel call, a 400 naming the field for every bad input (and
serving on after it), concurrent clients, and no training code imported."""

import concurrent.futures
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from hgn_tf.export import client
from hgn_tf.export.saved_model import export_saved_model
from hgn_tf.export.server import start_server

from hgn_tf import cli
from hgn_tf import config as C
from hgn_tf.errors import DataError

EXPORT_MAX_STEPS, EXPORT_MAX_BATCH = 20, 4  # the export's caps
SERVER_MAX_STEPS = 10  # the server's cap on n_steps: smaller, so it wins
SERVER_MAX_BATCH_STEPS = 20  # the server's cap on batch x n_steps
K = 4  # the tiny preset's sequence length: the autoencoder's conditioning frames


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """An untrained tiny HGN exported as version 1 (serving does not care what it learned)."""
    from hgn_tf.train import build_model

    base = tmp_path_factory.mktemp("serving") / "hgn"
    export_saved_model(build_model(C.tiny("pendulum")), base, max_steps=EXPORT_MAX_STEPS,
                       max_batch=EXPORT_MAX_BATCH)
    return base


@pytest.fixture(scope="module")
def url(model_dir):
    server, thread, url = start_server(model_dir, port=0, max_steps=SERVER_MAX_STEPS,
                                       max_batch_steps=SERVER_MAX_BATCH_STEPS)
    assert url.startswith("http://127.0.0.1:")
    yield url
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@pytest.fixture(scope="module")
def direct(model_dir):
    """The same SavedModel called in-process: the reference answers."""
    signatures = tf.saved_model.load(str(model_dir / "1")).signatures

    def call(name, **inputs):
        out = signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in out.items()}

    return call


def _frames(batch, seed=0, k=K):
    return np.random.default_rng(seed).integers(0, 256, (batch, k, 32, 32, 3), dtype=np.uint8)


def _http(url, path, body=None, raw=None):
    """(status, JSON answer) of a GET (no body) or a POST."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url + path, data=data, method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _good_rollout(url, direct):
    x = _frames(1, seed=99)
    got = client.predict(url, "rollout", {"frames": x, "n_steps": 2, "dt": 0.125})
    want = direct("rollout", frames=x, n_steps=np.int32(2), dt=np.float32(0.125))
    np.testing.assert_allclose(got["frames"], want["frames"], atol=1e-6)


def test_status_and_metadata_as_tf_serving_answers_them(url):
    ok = {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                    "status": {"error_code": "OK", "error_message": ""}}]}
    assert _http(url, "/v1/models/hgn") == (200, ok)
    assert _http(url, "/v1/models/hgn/versions/1") == (200, ok)
    status, meta = _http(url, "/v1/models/hgn/metadata")
    assert status == 200
    assert meta["model_spec"] == {"name": "hgn", "signature_name": "", "version": "1"}
    defs = meta["metadata"]["signature_def"]["signature_def"]
    assert {name: set(d["inputs"]) for name, d in defs.items()} == {
        "rollout": {"frames", "n_steps", "dt"}, "rollout_frames": {"frames", "n_steps", "dt"},
        "sample": {"n", "n_steps", "dt", "seed"},
        "encode": {"frames"}, "decode": {"q"}, "hamiltonian": {"q", "p"}}
    frames = defs["rollout"]["inputs"]["frames"]
    assert frames["dtype"] == "DT_UINT8"
    assert [d["size"] for d in frames["tensor_shape"]["dim"]] == ["-1", "-1", "32", "32", "3"]
    assert set(defs["rollout"]["outputs"]) == {"frames", "q", "p", "energy"}
    assert set(defs["rollout_frames"]["outputs"]) == {"frames"}
    assert meta["hgn_export"]["conditioning_frames"] == K
    assert _http(url, "/v1/models/hgn/versions/1/metadata")[1] == meta


def test_rollout_by_columns_and_by_rows_equals_the_savedmodel(url, direct):
    x = _frames(2, seed=1)
    want = direct("rollout", frames=x, n_steps=np.int32(5), dt=np.float32(-0.1))
    got = client.predict(url, "rollout", {"frames": x, "n_steps": 5, "dt": -0.1})
    assert set(got) == {"frames", "q", "p", "energy"}
    for key in got:  # float32 in its shortest exact form both ways: bit-equal
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    status, answer = _http(url, "/v1/models/hgn/versions/1:predict", {
        "signature_name": "rollout",
        "instances": [{"frames": x[i].tolist(), "n_steps": 5, "dt": -0.1} for i in range(2)]})
    assert status == 200 and len(answer["predictions"]) == 2
    for i, row in enumerate(answer["predictions"]):
        for key in want:
            np.testing.assert_allclose(np.asarray(row[key]), want[key][i], atol=1e-6)


def test_single_output_signatures_answer_bare_values(url, direct):
    q = np.random.default_rng(2).normal(size=(3, 4, 4, 2)).astype(np.float32)
    p = np.random.default_rng(3).normal(size=(3, 4, 4, 2)).astype(np.float32)
    np.testing.assert_allclose(client.predict(url, "decode", {"q": q}),
                               direct("decode", q=q)["frames"], atol=1e-6)
    status, answer = _http(url, "/v1/models/hgn:predict", {
        "signature_name": "hamiltonian",
        "instances": [{"q": q[i].tolist(), "p": p[i].tolist()} for i in range(3)]})
    assert status == 200 and all(type(e) is float for e in answer["predictions"])  # not [e]
    np.testing.assert_allclose(answer["predictions"], direct("hamiltonian", q=q, p=p)["energy"],
                               atol=1e-6)
    status, answer = _http(url, "/v1/models/hgn:predict",
                           {"signature_name": "decode", "instances": q.tolist()})
    np.testing.assert_allclose(answer["predictions"], direct("decode", q=q)["frames"], atol=1e-6)
    x = _frames(2, seed=4)
    frames_only = client.predict(url, "rollout_frames", {"frames": x, "n_steps": 4, "dt": 0.125})
    full = direct("rollout", frames=x, n_steps=np.int32(4), dt=np.float32(0.125))
    np.testing.assert_array_equal(frames_only, full["frames"])  # bit for bit


def test_sample_and_encode(url, direct):
    a = client.predict(url, "sample", {"n": 2, "n_steps": 3, "dt": 0.125, "seed": 5})
    b = client.predict(url, "sample", {"n": 2, "n_steps": 3, "dt": 0.125, "seed": 5})
    c = client.predict(url, "sample", {"n": 2, "n_steps": 3, "dt": 0.125, "seed": 6})
    np.testing.assert_array_equal(a["frames"], b["frames"])
    assert np.abs(a["frames"] - c["frames"]).max() > 1e-4
    want = direct("sample", n=np.int32(2), n_steps=np.int32(3), dt=np.float32(0.125),
                  seed=np.int32(5))
    np.testing.assert_allclose(a["energy"], want["energy"], atol=1e-6)
    x = _frames(1, seed=4)
    np.testing.assert_allclose(client.predict(url, "encode", {"frames": x})["q"],
                               direct("encode", frames=x)["q"], atol=1e-6)


def _rollout(frames=None, n_steps=2, dt=0.125, **changes):
    frames = _frames(1) if frames is None else frames
    inputs = {"frames": frames.tolist() if isinstance(frames, np.ndarray) else frames,
              "n_steps": n_steps, "dt": dt}
    inputs.update(changes)
    return {"signature_name": "rollout", "inputs": inputs}


def _without(body, key):
    return {**body, "inputs": {k: v for k, v in body["inputs"].items() if k != key}}


BAD_REQUESTS = {
    # case: (request body, or raw bytes; text the error must contain)
    "malformed JSON": (b'{"signature_name": "rollout", "inputs": {', "malformed JSON"),
    "not an object": ([1, 2], "JSON object"),
    "unknown signature": ({"signature_name": "predict_future", "inputs": {}}, "signature_name"),
    "no signature": ({"inputs": {}}, "signature_name"),
    "inputs and instances": ({**_rollout(), "instances": []}, "exactly one of `inputs`"),
    "unknown field": ({**_rollout(), "input": {}}, "'input'"),
    "missing input": (_without(_rollout(), "n_steps"), "n_steps"),
    "unknown input": (_rollout(speed=2), "speed"),
    "wrong rank": (_rollout(frames=_frames(1)[0]), "`frames` must be an array of type uint8"),
    "ragged": (_rollout(frames=[[1, 2], [3]]), "`frames` is not a rectangular array"),
    "wrong image size": (_rollout(frames=np.zeros((1, K, 16, 16, 3), np.uint8)),
                         "`frames`: images must be 32x32"),
    "wrong channels": (_rollout(frames=np.zeros((1, K, 32, 32, 4), np.uint8)), "`frames`"),
    "float pixels": ({**_rollout(), "inputs": {**_rollout()["inputs"],
                                               "frames": (_frames(1) / 255).tolist()}},
                     "`frames` must hold integer pixels"),
    "pixel above 255": (_rollout(frames=_frames(1).astype(np.int64) + 255), "`frames`: pixel"),
    "negative pixel": (_rollout(frames=_frames(1).astype(np.int64) - 256), "`frames`: pixel"),
    "too few frames": (_rollout(frames=_frames(1, k=2)), "`frames`: the encoder reads"),
    "string n_steps": (_rollout(n_steps="30"), "`n_steps` must be a scalar of type int32"),
    "float n_steps": (_rollout(n_steps=2.5), "`n_steps` must hold integers"),
    "boolean dt": (_rollout(dt=True), "`dt` must hold numbers"),
    "vector n_steps": (_rollout(n_steps=[2]),
                       "`n_steps` must be a scalar of type int32, got shape [1]"),
    "n_steps zero": (_rollout(n_steps=0), "`n_steps` must be in [1, 10]"),
    "n_steps negative": (_rollout(n_steps=-3), "`n_steps` must be in [1, 10]"),
    "n_steps over the server cap": (_rollout(n_steps=SERVER_MAX_STEPS + 1), "`n_steps`"),
    "n_steps beyond int32": (_rollout(n_steps=2**40), "`n_steps`"),
    "batch over the export cap": (_rollout(frames=_frames(EXPORT_MAX_BATCH + 1)),
                                  "max_batch=4"),
    "empty batch": (_rollout(frames=np.zeros((0, K, 32, 32, 3), np.uint8)), "`frames`"),
    "NaN dt": (b'{"signature_name": "rollout", "inputs": {"frames": '
               + json.dumps(_frames(1).tolist()).encode() + b', "n_steps": 2, "dt": NaN}}',
               "`dt` must be finite"),
    "infinite q": ({"signature_name": "hamiltonian",
                    "inputs": {"q": np.full((1, 4, 4, 2), 1e39).tolist(),
                               "p": np.zeros((1, 4, 4, 2)).tolist()}}, "`q` must be finite"),
    "q and p batches differ": ({"signature_name": "hamiltonian",
                                "inputs": {"q": np.zeros((2, 4, 4, 2)).tolist(),
                                           "p": np.zeros((1, 4, 4, 2)).tolist()}}, "`p`"),
    "sample n over cap": ({"signature_name": "sample", "inputs": {
        "n": EXPORT_MAX_BATCH + 1, "n_steps": 2, "dt": 0.1, "seed": 0}}, "`n` must be in"),
    "instances disagree on dt": ({"signature_name": "rollout", "instances": [
        {"frames": _frames(1)[0].tolist(), "n_steps": 2, "dt": 0.1},
        {"frames": _frames(1)[0].tolist(), "n_steps": 2, "dt": 0.2}]}, "`dt` is one value"),
    "instance lacks an input": ({"signature_name": "rollout", "instances": [
        {"frames": _frames(1)[0].tolist(), "n_steps": 2, "dt": 0.1},
        {"frames": _frames(1)[0].tolist(), "n_steps": 2}]}, "`dt` must be given in every"),
    "empty instances": ({"signature_name": "rollout", "instances": []}, "`instances`"),
    # The value contract: dt and states in a documented range (hgn_tf.export.limits).
    "dt 1e37": (_rollout(dt=1e37), "`dt` must be in [-1, 1]"),
    "dt 1e30 backward": (_rollout(dt=-1e30), "`dt` must be in [-1, 1]"),
    "dt just over 8x the training dt": (_rollout(dt=1.01), "`dt` must be in [-1, 1]"),
    "sample dt 1e37": ({"signature_name": "sample", "inputs": {
        "n": 1, "n_steps": 2, "dt": 1e37, "seed": 0}}, "`dt` must be in"),
    "decode q 3e38": ({"signature_name": "decode",
                       "inputs": {"q": np.full((1, 4, 4, 2), 3e38).tolist()}},
                      "`q`: values must be in [-1000, 1000]"),
    "hamiltonian q = p = 3e38": ({"signature_name": "hamiltonian",
                                  "inputs": {"q": np.full((1, 4, 4, 2), 3e38).tolist(),
                                             "p": np.full((1, 4, 4, 2), 3e38).tolist()}},
                                 "`q`: values must be in"),
    "signature_name a list": ({"signature_name": ["rollout"], "inputs": {}},
                              "`signature_name` must be a string"),
    "signature_name an object": ({"signature_name": {"rollout": 1}, "inputs": {}},
                                 "`signature_name` must be a string"),
    "batch x n_steps over the cap": (_rollout(frames=_frames(3), n_steps=SERVER_MAX_STEPS),
                                     "max_batch_steps=20"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_are_400_naming_the_field_and_serving_goes_on(url, direct, case):
    body, named = BAD_REQUESTS[case]
    raw = body if isinstance(body, bytes) else None
    status, answer = _http(url, "/v1/models/hgn:predict", None if raw else body, raw=raw)
    assert status == 400, answer
    assert set(answer) == {"error"} and named in answer["error"], answer["error"]
    _good_rollout(url, direct)


def test_unknown_model_or_version_is_404(url):
    for path in ("/v1/models/other", "/v1/models/hgn/versions/7", "/v1/models/other/metadata",
                 "/v2/models/hgn"):
        status, answer = _http(url, path)
        assert status == 404 and "error" in answer, path
    status, answer = _http(url, "/v1/models/other:predict", _rollout())
    assert status == 404 and "other" in answer["error"]
    status, _ = _http(url, "/v1/models/hgn/versions/7:predict", _rollout())
    assert status == 404


def test_concurrent_clients_get_their_own_answers(url, direct):
    clients, requests_each = 8, 50
    inputs = [_frames(1, seed=100 + c) for c in range(clients)]
    wants = [direct("rollout", frames=x, n_steps=np.int32(2), dt=np.float32(0.125))
             for x in inputs]

    def one_client(c):
        worst = 0.0
        for _ in range(requests_each):
            got = client.predict(url, "rollout", {"frames": inputs[c], "n_steps": 2,
                                                  "dt": 0.125}, timeout=60)
            worst = max(worst, float(np.abs(got["frames"] - wants[c]["frames"]).max()),
                        float(np.abs(got["energy"] - wants[c]["energy"]).max()))
        return worst

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        worst = list(pool.map(one_client, range(clients)))
    elapsed = time.monotonic() - start
    assert max(worst) <= 1e-6
    assert elapsed < 120, f"{clients * requests_each} requests took {elapsed:.0f} s"


def test_client_and_cli_write_a_rollout_gif(url, tmp_path, capsys, monkeypatch):
    from PIL import Image

    asked, predict, metadata = [], client.predict, client.metadata
    monkeypatch.setattr(client, "predict", lambda u, sig, *a, **k: asked.append(sig) or
                        predict(u, sig, *a, **k))
    np.save(tmp_path / "frames.npy", _frames(2, seed=7))
    gif = client.rollout_to_gif(url, tmp_path / "frames.npy", tmp_path / "a.gif", n_steps=5)
    with Image.open(gif) as img:
        assert img.n_frames == 5
    # It asks for the frames alone; a model exported before `rollout_frames` gets `rollout`.
    old_meta = metadata(url)
    del old_meta["metadata"]["signature_def"]["signature_def"]["rollout_frames"]
    monkeypatch.setattr(client, "metadata", lambda *a, **k: old_meta)
    client.rollout_to_gif(url, tmp_path / "frames.npy", tmp_path / "old.gif", n_steps=5)
    with Image.open(tmp_path / "old.gif") as img:
        assert img.n_frames == 5
    assert asked == ["rollout_frames", "rollout"]
    monkeypatch.setattr(client, "metadata", metadata)
    np.save(tmp_path / "one.npy", _frames(1, seed=7)[0])  # [k, H, W, 3]: a batch of one
    assert cli.main(["rollout", "--server", url, "--frames", str(tmp_path / "one.npy"),
                     "--out", str(tmp_path / "b.gif"), "--n-steps", "3", "--dt", "-0.125"]) == 0
    with Image.open(tmp_path / "b.gif") as img:
        assert img.n_frames == 3
    assert cli.main(["rollout", "--server", url, "--frames", str(tmp_path / "one.npy"),
                     "--out", str(tmp_path / "c.gif"), "--n-steps", "0"]) == 2
    assert "`n_steps` must be in [1, 10]" in capsys.readouterr().err
    np.save(tmp_path / "floats.npy", np.zeros((4, 32, 32, 3), np.float32))
    with pytest.raises(DataError, match="must hold uint8 frames"):
        client.rollout_to_gif(url, tmp_path / "floats.npy", tmp_path / "d.gif")


def test_server_runs_without_the_training_code(model_dir):
    """In a fresh process where hgn_tf's model, training and config modules cannot be imported."""
    script = f"""
import sys
for name in ("hgn_tf.model", "hgn_tf.train", "hgn_tf.config", "hgn_tf.networks",
             "hgn_tf.integrators", "hgn_tf.geco", "hgn_tf.data", "keras"):
    sys.modules[name] = None
import numpy as np
from hgn_tf.export import client
from hgn_tf.export.server import start_server
server, thread, url = start_server({str(model_dir)!r})
x = np.zeros((1, {K}, 32, 32, 3), np.uint8)
out = client.predict(url, "rollout", {{"frames": x, "n_steps": 3, "dt": 0.125}})
assert out["frames"].shape == (1, 3, 32, 32, 3), out["frames"].shape
server.shutdown()
print("SERVED")
"""
    proc = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0 and "SERVED" in proc.stdout, proc.stderr[-3000:]


def _test_client(model_dir, **caps):
    from hgn_tf.export.server import ModelServer
    from werkzeug.test import Client

    app = Client(ModelServer(model_dir, **caps))

    def post(body):
        response = app.post("/v1/models/hgn:predict", json=body)
        return response.status_code, json.loads(response.get_data())

    return post


def test_the_answer_size_is_capped_before_the_call(model_dir):
    # rollout values per frame: 32 x 32 x 3 pixels + q, p (4 x 4 x 2 each) + energy = 3137.
    post = _test_client(model_dir, max_response_bytes=3137 * 24 * 4)
    status, answer = post(_rollout(n_steps=4))
    assert status == 200 and np.asarray(answer["outputs"]["frames"]).shape == (1, 4, 32, 32, 3)
    status, answer = post(_rollout(n_steps=5))
    assert status == 400 and "max_response_bytes=301152" in answer["error"], answer


def test_a_non_finite_output_is_422_never_a_200(model_dir, tmp_path, monkeypatch):
    from hgn_tf.export.server import ServableVersion

    from hgn_tf.train import build_model

    # A model whose decoder answers NaN for every input: the graph's own output check refuses it.
    model = build_model(C.tiny("pendulum"))
    kernel = model.decoder.trainable_variables[0]
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))
    export_saved_model(model, tmp_path / "nan", max_steps=4, max_batch=2)
    post = _test_client(tmp_path / "nan")
    for body in (_rollout(), {"signature_name": "decode",
                              "inputs": {"q": np.zeros((1, 4, 4, 2)).tolist()}}):
        status, answer = post(body)
        assert status == 422, answer
        assert "`frames` output is not finite" in answer["error"]

    # An export without that check (or a server-side NaN): the server's own check refuses it.
    def nan_call(self, signature, feeds):
        return {"energy": np.array([np.nan, 1.0], np.float32)}

    monkeypatch.setattr(ServableVersion, "call", nan_call)
    post = _test_client(model_dir)
    status, answer = post({"signature_name": "hamiltonian",
                           "inputs": {"q": np.zeros((2, 4, 4, 2)).tolist(),
                                      "p": np.zeros((2, 4, 4, 2)).tolist()}})
    assert status == 422 and "`energy` output is not finite" in answer["error"], answer


def test_stalled_connections_are_closed_and_capped(model_dir, direct):
    import socket
    import threading

    server, thread, url = start_server(model_dir, port=0, read_timeout=1.0, max_connections=4)
    try:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        threads_before = threading.active_count()
        stalled = []
        for i in range(4):  # silent, a request line without headers, half a body
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.sendall([b"", b"POST /v1/models/hgn:predict HTTP/1.1\r\n",
                          b"POST /v1/models/hgn:predict HTTP/1.1\r\nContent-Length: 100\r\n"
                          b"\r\n{", b"GET /v1/models/hgn HTTP/1.1\r\n"][i])
            stalled.append(sock)
        time.sleep(0.3)
        # The cap: a fifth connection is answered 503 at once and closed, without a thread.
        extra = socket.create_connection((host, int(port)), timeout=10)
        assert extra.recv(4096).startswith(b"HTTP/1.1 503")
        assert threading.active_count() <= threads_before + 4
        # The timeout: every stalled connection is closed by the server within about a second.
        start = time.monotonic()
        for sock in stalled:
            while sock.recv(4096):  # a 408 may come first, then the end of the stream
                pass
            sock.close()
        assert time.monotonic() - start < 5
        extra.close()
        _good_rollout(url, direct)  # the slots are free again
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def test_rollout_cli_refuses_a_dt_outside_the_range_naming_it(url, tmp_path, capsys):
    np.save(tmp_path / "one.npy", _frames(1, seed=7)[0])
    for dt in ("1e37", "nan"):
        assert cli.main(["rollout", "--server", url, "--frames", str(tmp_path / "one.npy"),
                         "--out", str(tmp_path / "x.gif"), "--dt", dt]) == 2
        err = capsys.readouterr().err
        assert err.startswith("hgn rollout: error: `--dt`") and err.count("\n") == 1, err
    assert not (tmp_path / "x.gif").exists()


def test_serve_cli_refuses_a_bad_port_or_host_in_one_line(model_dir, capsys):
    for flags, named in ((["--port", "70000"], "--port"), (["--port", "-1"], "--port"),
                         (["--host", "999.1.1.1", "--port", "0"], "--host")):
        assert cli.main(["serve", "--model-dir", str(model_dir), *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"hgn serve: error: {named}") and err.count("\n") == 1, err
