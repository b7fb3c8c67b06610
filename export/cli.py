"""The `hgn export`, `hgn serve` and `hgn rollout` sub-commands (added by `hgn_tf.cli`).

    hgn export --run-dir R --out D            SavedModel version D/<next> of a trained run
    hgn serve --model-dir D [--port 8501]     TF Serving's REST API for the latest version in D
    hgn rollout --server URL --frames F.npy --out rollout.gif [--n-steps 30] [--dt 0.125]
"""

from __future__ import annotations

from hgn_tf.export.limits import DEFAULT_MAX_BATCH, DEFAULT_MAX_STEPS

__all__ = ["add_commands"]


def cmd_export(args):
    from hgn_tf.export.saved_model import export_saved_model

    path = export_saved_model(args.run_dir, args.out, version=args.version,
                              max_steps=args.max_steps, max_batch=args.max_batch)
    print(f"wrote {path}")


def cmd_serve(args):
    from hgn_tf.export.server import serve

    serve(args.model_dir, args.model_name, args.host, args.port, max_steps=args.max_steps,
          max_batch=args.max_batch)


def cmd_rollout(args):
    import urllib.error

    from hgn_tf.export.client import ServerError, rollout_to_gif

    from hgn_tf.errors import HGNError, ServingInputError

    try:
        path = rollout_to_gif(args.server, args.frames, args.out, n_steps=args.n_steps,
                              dt=args.dt, model_name=args.model_name)
    except ServerError as e:
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
    _add_caps(p, "")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser("serve", help="serve an export over TF Serving's REST API")
    p.add_argument("--model-dir", required=True, help="the folder `hgn export --out` wrote")
    p.add_argument("--model-name", default="hgn",
                   help="the model's name in the URLs (default %(default)s)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default %(default)s: this machine only)")
    p.add_argument("--port", type=int, default=8501, help="port (default %(default)s)")
    _add_caps(p, "; the export's own cap applies too")
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
