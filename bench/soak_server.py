"""Soak test of the REST server: valid and hostile requests plus stalled sockets, on loopback.

    python bench/soak_server.py [--clients 8] [--seconds 60] [--stalled 200]

Exports an untrained tiny HGN (`hgn_tf.config.tiny`) into a temporary folder, starts `hgn serve`
on 127.0.0.1 in its own process (port 0: a free port), then for `--seconds`:
  * `--clients` threads send requests drawn from a fixed mix: valid rollout / sample / encode /
    decode / hamiltonian calls (now and then a 1,000-step rollout, a large answer), and invalid
    ones (dt = 1e37, q = 3e38, a list as signature_name, malformed JSON, n_steps = 0, a batch x
    n_steps or an answer over the caps, a missing input);
  * `--stalled` sockets are kept open without finishing a request (a request line and part of
    the headers); each one the server closes (its read timeout) is replaced at once.
Every answer is checked: its status, and for a 200 that the body is strict JSON (no NaN or
Infinity) with every number finite. Prints the requests, the status counts, the 5xx and
non-finite 200 counts, the stalled sockets the server closed, and the server's resident memory
(RSS) and threads after the warm-up, at the peak and at the end. Exits 1 if a check failed (a
5xx, a non-finite 200, an unexpected status, end RSS more than 20% above the start).
Bounded: every socket has a timeout and the run stops after `--seconds` (plus at most a
minute to drain).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request


def _export_tiny_model(folder: str) -> str:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from hgn_tf.export.saved_model import export_saved_model

    from hgn_tf import config
    from hgn_tf.train import build_model

    base = os.path.join(folder, "hgn")
    export_saved_model(build_model(config.tiny("pendulum")), base)
    return base


def _start_server(model_dir: str) -> tuple[subprocess.Popen, str]:
    code = ("import sys; from hgn_tf.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--model-dir", model_dir, "--host", "127.0.0.1",
         "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        found = re.search(r"at (http://127\.0\.0\.1:\d+)/", line or "")
        if found:
            return proc, found.group(1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit("the server did not start")


def _proc_status(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                out[key] = int(value.split()[0])
    return out  # VmRSS in KiB


def _strict_finite(text: str):
    """The JSON body, refusing NaN / Infinity tokens; raises ValueError on a non-finite number."""
    def refuse(token):
        raise ValueError(f"non-finite token {token}")

    body = json.loads(text, parse_constant=refuse)
    stack = [body]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            raise ValueError("non-finite number")
    return body


def _requests(k: int, r: int, s: tuple) -> list[tuple[str, object, set]]:
    """(name, body or raw bytes, accepted statuses) of the request mix."""
    rng = random.Random(0)

    def frames(b):
        return [[[[[rng.randrange(256)] * 3 for _ in range(r)] for _ in range(r)]
                 for _ in range(k)] for _ in range(b)]

    def zeros(b, v=0.0):
        return [[[[v] * s[2] for _ in range(s[1])] for _ in range(s[0])] for _ in range(b)]

    f1, f2 = frames(1), frames(2)
    ok = {200}
    bad = {400}
    return [
        ("rollout", {"signature_name": "rollout",
                     "inputs": {"frames": f1, "n_steps": 30, "dt": 0.125}}, ok),
        ("rollout rows", {"signature_name": "rollout", "instances": [
            {"frames": f1[0], "n_steps": 10, "dt": -0.125}, {"frames": f2[1], "n_steps": 10,
                                                            "dt": -0.125}]}, ok),
        ("sample", {"signature_name": "sample",
                    "inputs": {"n": 2, "n_steps": 20, "dt": 0.125, "seed": 3}}, ok),
        ("encode", {"signature_name": "encode", "inputs": {"frames": f2}}, ok),
        ("decode", {"signature_name": "decode", "inputs": {"q": zeros(2)}}, ok),
        ("hamiltonian", {"signature_name": "hamiltonian",
                         "inputs": {"q": zeros(2, 0.5), "p": zeros(2, -0.5)}}, ok),
        ("dt 1e37", {"signature_name": "rollout",
                     "inputs": {"frames": f1, "n_steps": 5, "dt": 1e37}}, bad),
        ("sample dt 1e30", {"signature_name": "sample",
                            "inputs": {"n": 1, "n_steps": 5, "dt": 1e30, "seed": 0}}, bad),
        ("q 3e38", {"signature_name": "decode", "inputs": {"q": zeros(1, 3e38)}}, bad),
        ("signature list", {"signature_name": ["rollout"], "inputs": {}}, bad),
        ("signature object", {"signature_name": {"a": 1}, "inputs": {}}, bad),
        ("malformed JSON", b'{"signature_name": "rollout", "inputs": {', bad),
        ("n_steps 0", {"signature_name": "rollout",
                       "inputs": {"frames": f1, "n_steps": 0, "dt": 0.1}}, bad),
        ("batch x steps over cap", {"signature_name": "sample",
                                    "inputs": {"n": 4, "n_steps": 1000, "dt": 0.1,
                                               "seed": 0}}, bad),
        ("missing input", {"signature_name": "rollout",
                           "inputs": {"frames": f1, "n_steps": 5}}, bad),
        ("NaN dt", b'{"signature_name": "sample", "inputs": {"n": 1, "n_steps": 2, '
                   b'"dt": NaN, "seed": 0}}', bad),
    ]


_LARGE = ("1000-step rollout", None, {200})  # its body is made from the first request's frames


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--stalled", type=int, default=200)
    parser.add_argument("--large-every", type=int, default=100,
                        help="one 1,000-step rollout every N requests of a client")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="hgn-soak-") as tmp:
        model_dir = _export_tiny_model(tmp)
        with open(os.path.join(model_dir, "1", "assets", "hgn_export.json")) as f:
            info = json.load(f)
        k, r, s = info["conditioning_frames"], info["resolution"], tuple(info["state_shape"])
        server, url = _start_server(model_dir)
        try:
            return _soak(args, server, url, _requests(k, r, s))
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()


def _post(url: str, body) -> tuple[int, str]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url + "/v1/models/hgn:predict", data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def _soak(args, server, url: str, mix) -> int:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    large_body = {"signature_name": "rollout",
                  "inputs": {**mix[0][1]["inputs"], "n_steps": 1000}}
    for _name, body, _ in mix:  # warm-up: every graph traced, every path taken once
        _post(url, body)
    _post(url, large_body)
    time.sleep(2)
    start_mem = _proc_status(server.pid)

    counts = collections.Counter()
    statuses = collections.Counter()
    problems = []
    lock = threading.Lock()
    stop = time.monotonic() + args.seconds
    peak = dict(start_mem)
    stalled_closed = [0]
    stalled_opened = [0]

    def client(c):
        rng = random.Random(c)
        n = 0
        while time.monotonic() < stop:
            n += 1
            if args.large_every and n % args.large_every == 0:
                name, body, accepted = _LARGE[0], large_body, _LARGE[2]
            else:
                name, body, accepted = rng.choice(mix)
            try:
                status, text = _post(url, body)
            except OSError as e:  # a refused or dropped connection is a failure too
                status, text = -1, repr(e)
            finite = True
            if status == 200:
                try:
                    _strict_finite(text)
                except ValueError:
                    finite = False
            with lock:
                counts[name] += 1
                statuses[status] += 1
                if status not in accepted or not finite:
                    problems.append((name, status, "non-finite" if not finite else text[:200]))

    def stall():
        socks = []
        while time.monotonic() < stop:
            while len(socks) < args.stalled and time.monotonic() < stop:
                try:
                    sk = socket.create_connection((host, int(port)), timeout=5)
                    sk.sendall(b"POST /v1/models/hgn:predict HTTP/1.1\r\nHost: x\r\n")
                    sk.setblocking(False)
                    socks.append(sk)
                    stalled_opened[0] += 1
                except OSError:
                    time.sleep(0.05)
            time.sleep(0.5)
            alive = []
            for sk in socks:
                try:
                    data = sk.recv(4096)
                    if data == b"" or data.startswith(b"HTTP/1.1 408") or b"503" in data[:20]:
                        stalled_closed[0] += 1
                        sk.close()
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    stalled_closed[0] += 1
                    sk.close()
                    continue
                alive.append(sk)
            socks = alive
        for sk in socks:
            sk.close()

    def watch():
        while time.monotonic() < stop:
            now = _proc_status(server.pid)
            for key in now:
                peak[key] = max(peak.get(key, 0), now[key])
            time.sleep(0.5)

    threads = [threading.Thread(target=stall, daemon=True),
               threading.Thread(target=watch, daemon=True)]
    threads += [threading.Thread(target=client, args=(c,), daemon=True)
                for c in range(args.clients)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=args.seconds + 60)
    elapsed = time.monotonic() - began
    time.sleep(3)  # let the last answers be freed
    end_mem = _proc_status(server.pid)

    total = sum(statuses.values())
    five = sum(v for k, v in statuses.items() if k >= 500 or k < 0)
    non_finite = sum(1 for p in problems if p[2] == "non-finite")
    growth = end_mem["VmRSS"] / start_mem["VmRSS"] - 1
    print(f"soak: {args.clients} clients x {elapsed:.0f} s, {args.stalled} stalled sockets kept "
          f"open, loopback {url}")
    print(f"requests: {total} ({total / elapsed:.1f}/s)")
    print("status counts: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
    print("requests by kind: " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    print(f"5xx (or no answer): {five}; non-finite 200: {non_finite}; "
          f"unexpected statuses: {len(problems) - non_finite}")
    print(f"stalled sockets: {stalled_opened[0]} opened, {stalled_closed[0]} closed by the server")
    print(f"server RSS: start {start_mem['VmRSS'] / 1024:.0f} MiB, peak "
          f"{peak['VmRSS'] / 1024:.0f} MiB, end {end_mem['VmRSS'] / 1024:.0f} MiB "
          f"({growth:+.1%}); threads: start {start_mem['Threads']}, peak {peak['Threads']}, "
          f"end {end_mem['Threads']}")
    for p in problems[:10]:
        print("  problem:", p)
    ok = five == 0 and not problems and growth <= 0.20
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
