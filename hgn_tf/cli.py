"""The `hgn` command: thin sub-commands, each parsing arguments and calling one library function.

hgn data build --system pendulum [--max-examples N]   build the TFDS dataset
hgn data show pendulum [--out DIR]                    PNG grid + GIF of stored sequences
hgn train --system pendulum --preset small --run-dir R   (again with --run-dir R: resume)
hgn evaluate --run-dir R                               metrics.json + pictures in R/eval
hgn demo --out DIR                                     the whole main job on a small config
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

__all__ = ["main"]


def _quiet_tf():
    # TensorFlow's C++ log prints harmless grappler notes at ERROR level ("remapper failed");
    # Python exceptions still surface. Set TF_CPP_MIN_LOG_LEVEL yourself to see them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _data_config(args):
    from hgn_tf.config import DataConfig

    return DataConfig(
        system=args.system,
        resolution=args.resolution,
        max_examples=args.max_examples,
        data_dir=args.data_dir,
    )


def cmd_data_build(args):
    from hgn_tf import data

    builder = data.build(_data_config(args), num_workers=args.workers)
    print(f"built {builder.info.full_name} in {builder.data_dir}")
    for split, info in builder.info.splits.items():
        print(f"  {split}: {info.num_examples} sequences")


def cmd_data_show(args):
    from hgn_tf import data, plots

    cfg = _data_config(args)
    arrays = data.load_arrays(cfg, args.split, keys=("frames",), limit=args.n)
    frames = arrays["frames"]
    out = pathlib.Path(args.out)
    png = plots.grid_png(frames, out / f"{cfg.system}_{args.split}.png")
    gif = plots.sequences_gif(frames, out / f"{cfg.system}_{args.split}.gif")
    print(f"wrote {png}\nwrote {gif}")


def _run_config(args):
    from hgn_tf import config as C

    run_dir = pathlib.Path(args.run_dir)
    if args.config:
        cfg = C.RunConfig.load(args.config)
    elif (run_dir / "config.json").exists() and args.system is None and args.preset is None:
        return C.RunConfig.load(run_dir / "config.json")
    else:
        cfg = C.preset(args.preset or "small", args.system or "pendulum")
    data_changes, train_changes = {}, {}
    if args.system and args.config:
        data_changes["system"] = args.system
    if args.max_examples is not None:
        data_changes["max_examples"] = args.max_examples
    if args.data_dir is not None:
        data_changes["data_dir"] = args.data_dir
    for field in ("steps", "batch_size", "strategy", "seed"):
        value = getattr(args, field)
        if value is not None:
            train_changes[field] = value
    return cfg.replace(data=data_changes, train=train_changes)


def cmd_train(args):
    from hgn_tf.train import train

    cfg = _run_config(args)
    train(cfg, args.run_dir, verbose=1 if sys.stdout.isatty() else 2)
    print(f"run folder: {args.run_dir}")


def cmd_evaluate(args):
    from hgn_tf.evaluate import evaluate

    evaluate(args.run_dir, max_sequences=args.max_sequences, batch_size=args.batch_size)
    print(f"wrote {pathlib.Path(args.run_dir) / 'eval' / 'metrics.json'}")


def cmd_demo(args):
    from hgn_tf.demo import run_demo

    run_demo(args.out, steps=args.steps)


def _add_data_args(p, positional_system=False):
    from hgn_tf.physics import SYSTEM_NAMES

    if positional_system:
        p.add_argument("system", choices=SYSTEM_NAMES)
    else:
        p.add_argument("--system", choices=SYSTEM_NAMES, default="pendulum")
    p.add_argument("--resolution", type=int, choices=(32, 64), default=32)
    p.add_argument(
        "--max-examples",
        type=int,
        default=None,
        help="build only the first N sequences of each split",
    )
    p.add_argument("--data-dir", default=None, help="TFDS data dir (default ~/tensorflow_datasets)")


def build_parser() -> argparse.ArgumentParser:
    from hgn_tf.physics import SYSTEM_NAMES

    parser = argparse.ArgumentParser(prog="hgn", description="Hamiltonian Generative Networks.")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="datasets").add_subparsers(
        dest="data_command", required=True
    )
    p = data.add_parser("build", help="build a hamiltonian_systems dataset")
    _add_data_args(p)
    p.add_argument("--workers", type=int, default=None, help="threads (default: all cores)")
    p.set_defaults(func=cmd_data_build)
    p = data.add_parser("show", help="write a PNG grid and a GIF of stored sequences")
    _add_data_args(p, positional_system=True)
    p.set_defaults(max_examples=64)
    p.add_argument("--split", choices=("train", "test"), default="train")
    p.add_argument("--n", type=int, default=8, help="sequences to show")
    p.add_argument("--out", default="runs/data_show")
    p.set_defaults(func=cmd_data_show)

    p = sub.add_parser("train", help="train an HGN with model.fit (resumes a killed run)")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--system", choices=SYSTEM_NAMES, default=None)
    p.add_argument("--preset", choices=("paper", "small", "tiny"), default=None)
    p.add_argument("--config", default=None, help="a RunConfig JSON (e.g. from `hgn tune`)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--strategy", choices=("default", "mirrored"), default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--max-examples", type=int, default=None)
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="metrics.json and pictures for a trained run")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--max-sequences", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=32)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("demo", help="the main job on a small config")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--steps", type=int, default=None, help="override the training steps")
    p.set_defaults(func=cmd_demo)

    import importlib
    import importlib.util

    for extra in ("hgn_tf.export.cli", "hgn_tf.tuning.cli"):
        if importlib.util.find_spec(extra) is not None:
            importlib.import_module(extra).add_commands(sub)
    return parser


def main(argv=None) -> int:
    _quiet_tf()
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ValueError as e:
        print(f"hgn: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
