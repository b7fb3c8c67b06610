"""The `hgn export`, `hgn serve` and `hgn rollout` sub-commands (added by `hgn_tf.cli`).

    hgn export --run-dir R --out D [--prior auto|standard|learned]   SavedModel version D/<next>
    hgn serve --model-dir D [--port 8501]     TF Serving's REST API for the latest version in D
    hgn rollout --server URL --frames F.npy --out rollout.gif [--n-steps 30] [--dt 0.125]
"""

from __future__ import annotations

import math

from hgn_tf.export.limits import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_BATCH_STEPS,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_STEPS,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_XLA_MAX_BATCH,
)

__all__ = ["add_commands"]


def cmd_export(args):
    from hgn_tf.export.saved_model import export_saved_model

    from hgn_tf.errors import HGNError

    try:
        path = export_saved_model(args.run_dir, args.out, version=args.version,
                                  max_steps=args.max_steps, max_batch=args.max_batch,
                                  prior=args.prior, xla_max_batch=args.xla_max_batch,
                                  precision=args.precision)
    except HGNError as e:
        raise _flag_error(e, {"prior": "--prior", "xla_max_batch": "--xla-max-batch",
                              "precision": "--precision",
                              "max_steps": "--max-steps", "max_batch": "--max-batch",
                              "version": "--version"}) from None
    print(f"wrote {path}")


def _flag_error(error, flags: dict):
    """`error` re-raised with the command-line flag of its field in front, if it has one."""
    flag = flags.get(error.field)
    if flag is None:
        return error
    return type(error)(f"{flag}: {error}", flag)


def cmd_serve(args):
    from hgn_tf.export.server import serve

    from hgn_tf.errors import HGNError

    try:
        serve(args.model_dir, args.model_name, args.host, args.port, max_steps=args.max_steps,
              max_batch=args.max_batch, max_batch_steps=args.max_batch_steps,
              max_response_bytes=args.max_response_bytes, read_timeout=args.read_timeout,
              max_connections=args.max_connections)
    except HGNError as e:
        raise _flag_error(e, {f: "--" + f.replace("_", "-") for f in (
            "host", "port", "model_dir", "model_name", "max_steps", "max_batch",
            "max_batch_steps", "max_response_bytes", "read_timeout", "max_connections")}) from None


def cmd_rollout(args):
    import urllib.error

    from hgn_tf.export.client import ServerError, rollout_to_gif

    from hgn_tf.errors import ConfigError, HGNError, ServingInputError

    if args.dt is not None and not math.isfinite(args.dt):
        raise ConfigError(f"`--dt` must be a finite number, got {args.dt}.", "--dt")
    try:
        path = rollout_to_gif(args.server, args.frames, args.out, n_steps=args.n_steps,
                              dt=args.dt, model_name=args.model_name)
    except ServerError as e:
        if e.status == 400 and str(e).split(": ", 1)[-1].startswith("`dt`"):
            raise ConfigError(f"`--dt` {args.dt}: the server at {args.server} refused it: {e}",
                              "--dt") from None
        error = ServingInputError if 400 <= e.status < 500 else HGNError
        raise error(f"the server at {args.server} refused the rollout: {e}") from None
    except urllib.error.URLError as e:
        raise HGNError(f"`--server` {args.server}: cannot reach it ({e.reason}).") from None
    print(f"wrote {path}")


def _add_caps(p, note: str) -> None:
    for flag, default, what in (("--max-steps", DEFAULT_MAX_STEPS, "n_steps a call may ask"),
                                ("--max-batch", DEFAULT_MAX_BATCH, "batch a call may send")):
        p.add_argument(flag, type=int, default=default,
                       help=f"the largest {what} (default %(default)s{note})")


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a trained run as a TF Serving SavedModel")
    p.add_argument("--run-dir", required=True, help="a finished training run")
    p.add_argument("--out", required=True, help="the model base folder (versions go inside)")
    p.add_argument("--version", type=int, default=None, help="default: the next integer")
    p.add_argument("--prior", choices=("auto", "standard", "learned"), default="auto",
                   help="what the `sample` signature draws initial states from: auto (the "
                        "run's learned prior if `hgn fit-prior` made one, else N(0, I)), "
                        "standard (N(0, I)) or learned (default %(default)s)")
    _add_caps(p, "")
    p.add_argument("--xla-max-batch", type=int, default=DEFAULT_XLA_MAX_BATCH,
                   help="rollout and sample calls of at most this many sequences run their "
                        "integrator steps compiled by XLA: twice as fast at batch 1 on a CPU, "
                        "slower from batch ~32 (default %(default)s; 0: never, for a server "
                        "without XLA)")
    p.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default=None,
                   help="what the served model computes in (default: the trained model's); "
                        "mixed_bfloat16 runs the encoder's and decoder's convolutions in "
                        "bfloat16: faster on CPUs with AMX and recent GPUs, at bfloat16's "
                        "accuracy")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser("serve", help="serve an export over TF Serving's REST API")
    p.add_argument("--model-dir", required=True, help="the folder `hgn export --out` wrote")
    p.add_argument("--model-name", default="hgn",
                   help="the model's name in the URLs (default %(default)s)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default %(default)s: this machine only)")
    p.add_argument("--port", type=int, default=8501,
                   help="port in [0, 65535] (default %(default)s; 0: any free port)")
    _add_caps(p, "; the export's own cap applies too")
    p.add_argument("--max-batch-steps", type=int, default=DEFAULT_MAX_BATCH_STEPS,
                   help="the largest batch x n_steps of one call (default %(default)s)")
    p.add_argument("--max-response-bytes", type=int, default=DEFAULT_MAX_RESPONSE_BYTES,
                   help="the largest answer, estimated before the call (default %(default)s)")
    p.add_argument("--read-timeout", type=float, default=DEFAULT_READ_TIMEOUT,
                   help="seconds a silent connection is kept open (default %(default)s)")
    p.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS,
                   help="connections open at once; more get 503 (default %(default)s)")
    p.set_defaults(func=cmd_serve)

    p = subparsers.add_parser("rollout", help="ask a server for a rollout and write a GIF")
    p.add_argument("--server", required=True, help="e.g. http://127.0.0.1:8501")
    p.add_argument("--frames", required=True, help=".npy uint8 [k, H, W, 3] or [B, k, H, W, 3]")
    p.add_argument("--out", default="rollout.gif", help="the GIF to write (default %(default)s)")
    p.add_argument("--n-steps", type=int, default=30,
                   help="frames to roll out (default %(default)s)")
    p.add_argument("--dt", type=float, default=None, help="default: the model's training dt")
    p.add_argument("--model-name", default="hgn",
                   help="the model's name on the server (default %(default)s)")
    p.set_defaults(func=cmd_rollout)
