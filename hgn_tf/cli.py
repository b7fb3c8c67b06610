"""The `hgn` command: thin sub-commands, each parsing arguments and calling one library function.

hgn data build --system pendulum [--max-examples N]   build the TFDS dataset
    [--beam-runner DirectRunner --beam-workers 2]     ... as an Apache Beam pipeline
hgn data show pendulum [--out DIR]                    PNG grid + GIF of stored sequences
hgn data physics pendulum [--out DIR]                 the state read back from stored frames
hgn train --system pendulum --preset small --run-dir R   (again with --run-dir R: resume)
hgn evaluate --run-dir R [--horizon 30] [--prior standard|learned] [--prediction-floor]
    [--draws N]                                       metrics.json + pictures
hgn fit-prior --run-dir R [--kind gmm|flow]           a learned prior over the initial state
hgn experiment table1 --scale cpu --out D              Table 1 / Table 2 (resumable)
hgn demo --out DIR                                     the whole main job on a small config
hgn flows --density mog --model both --out DIR         NHF beside RealNVP on a 2-D density
hgn baselines hnn --task spring --out DIR             HNN beside the baseline MLP: table, pictures
hgn baselines pixel-hnn --out DIR                      PixelHNN on pendulum frames: latent orbits
hgn baselines hnn-conv --system S --steps N --out DIR  HNN-conv (HGN A.3): Table 1 pixel MSE
hgn export / serve / rollout, hgn tune                 see hgn_tf.export, hgn_tf.tuning

A user's mistake (`hgn_tf.errors.HGNError`) is printed as one line, exit status 2.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import sys
import tempfile

__all__ = ["main"]


# What TensorFlow's C++ libraries print while `import tensorflow` loads them, before its log
# settings are read (absl writes everything to stderr until it is initialised, so
# TF_CPP_MIN_LOG_LEVEL cannot silence it): notes, not problems. Any other line is passed on.
_IMPORT_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|I\d{4} [\d:. ]+\d+ (port\.cc|cudart_stub\.cc|cpu_feature_guard\.cc):\d+\] "
)


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with its start-up notes filtered out of stderr (see `_IMPORT_NOISE`).

    Python-level messages are unaffected; an import error still surfaces with its traceback.
    """
    # TensorFlow's C++ log prints harmless grappler notes at ERROR level ("remapper failed");
    # Python exceptions still surface. Set TF_CPP_MIN_LOG_LEVEL yourself to see them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not _IMPORT_NOISE.match(line):
                    sys.stderr.write(line)


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
    from hgn_tf.errors import ConfigError

    beam = None
    if args.beam_runner is None:
        for flag, value in (("--beam-workers", args.beam_workers),
                            ("--beam-option", args.beam_option or None)):
            if value is not None:
                raise ConfigError(f"{flag} {value}: allowed only with --beam-runner (a Beam "
                                  "build), got it alone.", flag)
    else:
        if args.workers is not None:
            raise ConfigError(f"--workers {args.workers}: sets in-process threads, not allowed "
                              "with --beam-runner; use --beam-workers.", "--workers")
        beam = data.beam_options(args.beam_runner, args.beam_workers, args.beam_option)
    builder = data.build(_data_config(args), num_workers=args.workers, exact=True,
                         rebuild=args.rebuild, beam_options=beam)
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


def cmd_data_physics(args):
    import numpy as np

    from hgn_tf import data, plausibility
    from hgn_tf import physics as physics_lib
    from hgn_tf.errors import positive_int

    positive_int("--n", args.n)
    positive_int("--show", args.show)
    cfg = _data_config(args)
    arrays = data.load_arrays(cfg, args.split, keys=("frames", "q", "p", "t"), limit=args.n)
    system = physics_lib.get(cfg.system)
    dt = float(data.build(cfg).builder_config.dt)
    t = arrays["t"][:1].astype(np.float64)
    clean = physics_lib.render_states(system, arrays["q"], cfg.resolution)
    print(f"{cfg.system} {args.split}: {len(arrays['q'])} sequences read back "
          "(E: the true energy; medians over sequences)")
    print("frames   found  E_rel_var  E_rel_drift  pos_err(px)  rod_resid  plausible")
    for label, frames in (("stored", arrays["frames"]), ("clean", clean)):
        r = plausibility.physics_report(frames, system, dt, true_q=arrays["q"])
        rod = r.get("constraint_residual")
        print(f"{label:7}  {r['found_fraction']:5.3f}  {r['energy_rel_var_median']:9.2e}  "
              f"{r['energy_rel_drift_median']:11.4f}  {r['position_error_px']:11.3f}  "
              f"{'-' if rod is None else format(rod, '.4f'):>9}  {r['plausible_fraction']:9.3f}")
    shown = slice(0, args.show)
    energy = system.conserved_energy(arrays["q"][shown], arrays["p"][shown], t)
    out = pathlib.Path(args.out)
    for label, frames in (("stored", arrays["frames"]), ("clean", clean)):
        for path in plausibility.write_pictures(frames[shown], system, dt, out,
                                                f"{cfg.system}_{args.split}_{label}",
                                                true_energy=energy):
            print(f"wrote {path}")


# `hgn train` flags that set one config field: flag dest -> (section, field).
_TRAIN_FLAGS = {
    "max_examples": ("data", "max_examples"),
    "data_dir": ("data", "data_dir"),
    "frames": ("data", "n_frames"),
    "integrator": ("model", "integrator"),
    "input_mode": ("model", "input_mode"),
    "input_frames": ("model", "input_frames"),
    "predictive_draws": ("model", "predictive_draws"),
    "precision": ("model", "precision"),
    "xla_steps": ("model", "xla_steps"),
    "steps": ("train", "steps"),
    "batch_size": ("train", "batch_size"),
    "learning_rate": ("train", "learning_rate"),
    "lr_schedule": ("train", "lr_schedule"),
    "strategy": ("train", "strategy"),
    "seed": ("train", "seed"),
}


def _run_config(args):
    """The run's config: a base (--config, --preset/--system, or the run folder's own), then flags.

    A flag that changes a finished or killed run's config makes `train` refuse the folder (it
    names it), rather than being ignored.
    """
    from hgn_tf import config as C
    from hgn_tf.errors import HGNError

    run_dir = pathlib.Path(args.run_dir)
    if args.config:
        cfg = C.RunConfig.load(args.config)
        if args.system:
            cfg = cfg.replace(data={"system": args.system})
    elif (run_dir / C.CONFIG_FILE).exists() and args.system is None and args.preset is None:
        cfg = C.RunConfig.load(run_dir / C.CONFIG_FILE)
    else:
        cfg = C.preset(args.preset or "small", args.system or "pendulum")
    changes = {"data": {}, "model": {}, "train": {}}
    if args.variant is not None:
        changes["model"].update(C.VARIANTS[args.variant])
    given = {}
    for dest, (section, field) in _TRAIN_FLAGS.items():
        value = getattr(args, dest)
        if value is not None:
            changes[section][field] = value
            given[field] = f"--{dest.replace('_', '-')} {value}"
    try:
        return cfg.replace(**changes)
    except HGNError as e:  # name the flag the user typed, not only the config field
        flag = given.get((e.field or "").rsplit(".", 1)[-1])
        if flag is None:
            raise
        raise type(e)(f"{flag}: {e}", e.field) from None


def cmd_train(args):
    from hgn_tf.train import train

    cfg = _run_config(args)
    train(cfg, args.run_dir, verbose=1 if sys.stdout.isatty() else 2)
    print(f"run folder: {args.run_dir}")


def cmd_evaluate(args):
    from hgn_tf.errors import HGNError
    from hgn_tf.evaluate import evaluate

    try:
        evaluate(args.run_dir, horizon=args.horizon, max_sequences=args.max_sequences,
                 batch_size=args.batch_size, prior=args.prior,
                 prediction_floor=args.prediction_floor, draws=args.draws)
    except HGNError as e:  # name the flag the user typed
        if e.field == "prediction_floor":
            raise type(e)(f"--prediction-floor: {e}", "--prediction-floor") from None
        if e.field == "draws":
            raise type(e)(f"--draws {args.draws}: {e}", "--draws") from None
        if e.field != "prior":
            raise
        raise type(e)(f"--prior {args.prior}: {e}", "--prior") from None
    print(f"wrote {pathlib.Path(args.run_dir) / 'eval' / 'metrics.json'}")


# `hgn fit-prior` flags: flag dest -> the `PriorConfig` field it sets.
_PRIOR_FLAGS = {"kind": "kind", "components": "components", "covariance": "covariance",
                "reg_covar": "reg_covar", "pca_dim": "pca_dim",
                "coupling_layers": "coupling_layers",
                "steps": "steps", "samples_per_sequence": "samples_per_sequence",
                "seed": "seed"}


def _flag_error(e, args, dests: dict):
    """Re-raise the HGNError `e` naming the flag the user typed: `dests` maps a config field (the
    last part of `e.field`) to its argparse dest; a field not in it is re-raised as it is."""
    dest = dests.get((e.field or "").rsplit(".", 1)[-1])
    if dest is None:
        raise e
    raise type(e)(f"--{dest.replace('_', '-')} {getattr(args, dest)}: {e}", e.field) from None


def cmd_fit_prior(args):
    from hgn_tf.errors import HGNError
    from hgn_tf.prior import PRIOR_CONFIG_FILE, PRIOR_WEIGHTS_FILE, PriorConfig, fit_run_prior

    fields = {field: getattr(args, dest) for dest, field in _PRIOR_FLAGS.items()}
    try:
        config = PriorConfig(**fields)
        _, report = fit_run_prior(args.run_dir, config, max_sequences=args.max_sequences)
    except HGNError as e:  # name the flag the user typed, not only the config field
        _flag_error(e, args, {**{field: dest for dest, field in _PRIOR_FLAGS.items()},
                              "max_sequences": "max_sequences"})
    line = (f"fitted a {report['kind']} prior over the initial state (dim {report['dim']}) to "
            f"{report['n_fit']} encoded training sequences: mean log p "
            f"{report['log_prob_fit']:.1f}")
    if "log_prob_holdout" in report:
        line += (f"; held out ({report['n_holdout']}): {report['log_prob_holdout']:.1f} "
                 f"(N(0, I): {report['log_prob_standard_holdout']:.1f})")
    print(line)
    run = pathlib.Path(args.run_dir)
    print(f"wrote {run / PRIOR_CONFIG_FILE}, {run / PRIOR_WEIGHTS_FILE}")


def cmd_experiment_table1(args):
    from hgn_tf.errors import HGNError
    from hgn_tf.experiments.table1 import run_table1

    try:
        run_table1(args.out, scale=args.scale, protocol=args.protocol, systems=args.systems,
                   variants=args.variants, data_dir=args.data_dir,
                   max_sequences=args.max_sequences, predictive_draws=args.predictive_draws,
                   precision=args.precision)
    except HGNError as e:  # name the flag the user typed, not only the config field
        _flag_error(e, args, {"predictive_draws": "predictive_draws",
                              "max_sequences": "max_sequences"})
    print(f"tables: {pathlib.Path(args.out) / args.protocol}/table1.md, table1.csv, table2.md, "
          "vpt.md")


def cmd_demo(args):
    from hgn_tf.demo import run_demo

    run_demo(args.out, steps=args.steps, precision=args.precision)


# `hgn flows` flags and the `run_flows` argument each sets (an error names the flag).
_FLOWS_FLAGS = {"density": "densities", "leapfrog_steps": "leapfrog_steps",
                "coupling_layers": "coupling_layers", "base": "base", "dt": "dt",
                "steps": "steps", "batch_size": "batch_size", "learning_rate": "learning_rate",
                "train_samples": "train_samples", "test_samples": "test_samples",
                "iw_samples": "iw_samples", "seed": "seed"}


def cmd_flows(args):
    from hgn_tf.errors import HGNError
    from hgn_tf.flows.compare import run_flows

    kwargs = {arg: getattr(args, dest) for dest, arg in _FLOWS_FLAGS.items()}
    if args.model == "nhf":
        kwargs["coupling_layers"] = ()
    elif args.model == "realnvp":
        kwargs["leapfrog_steps"] = ()
    try:
        run_flows(args.out, verbose=True, **kwargs)
    except HGNError as e:  # name the flag the user typed, not only the argument
        dest = {arg: dest for dest, arg in _FLOWS_FLAGS.items()}.get(e.field)
        if dest is None:
            raise
        value = getattr(args, dest)
        value = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
        raise type(e)(f"--{dest.replace('_', '-')} {value}: {e}", e.field) from None
    print(f"tables: {pathlib.Path(args.out) / 'table.md'}; pictures: "
          f"{pathlib.Path(args.out)}/<density>/kde.png")


def _add_flows_parser(sub):
    from hgn_tf.flows.densities import DENSITY_NAMES
    from hgn_tf.flows.nhf import BASES

    p = sub.add_parser("flows", help="train Neural Hamiltonian Flows beside RealNVP on 2-D "
                                     "densities (HGN Fig. 10): KDE pictures and an NLL/KL table")
    p.add_argument("--density", nargs="+", choices=DENSITY_NAMES, default=["mog"],
                   help="the target densities: mog (HGN Fig. 10), moons, ring (default mog)")
    p.add_argument("--model", choices=("nhf", "realnvp", "both"), default="both",
                   help="which models to train (default %(default)s)")
    p.add_argument("--leapfrog-steps", nargs="+", type=int, default=[2],
                   help="one NHF per value: its leapfrog steps, each with its own learned "
                        "Hamiltonian (default 2)")
    p.add_argument("--coupling-layers", nargs="+", type=int, default=[2],
                   help="one RealNVP per value: its affine coupling layers (default 2)")
    p.add_argument("--base", choices=BASES, default="normal",
                   help="the NHF's base distribution on (q, p) (default %(default)s)")
    p.add_argument("--dt", type=float, default=1.0,
                   help="the NHF's leapfrog step size (default %(default)s)")
    p.add_argument("--steps", type=int, default=3000,
                   help="Adam steps per model (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=256,
                   help="samples per step (default %(default)s)")
    p.add_argument("--learning-rate", type=float, default=3e-4,
                   help="Adam's step size (default %(default)s, HGN A.2)")
    p.add_argument("--train-samples", type=int, default=50_000,
                   help="samples of the target to train on (default %(default)s)")
    p.add_argument("--test-samples", type=int, default=5_000,
                   help="held-out samples scored in the table (default %(default)s)")
    p.add_argument("--iw-samples", type=int, default=128,
                   help="K, momenta per point of the NHF's importance-weighted NLL estimate "
                        "(default %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the samples, weights and momenta (default %(default)s)")
    p.add_argument("--out", default="runs/flows",
                   help="output folder: <density>/kde.png, table.md, weights (default "
                        "%(default)s)")
    p.set_defaults(func=cmd_flows)


def cmd_baselines_hnn(args):
    from hgn_tf.baselines.run import run_hnn
    from hgn_tf.baselines.tasks import TASK_NAMES

    tasks = TASK_NAMES if "all" in args.task else tuple(dict.fromkeys(args.task))
    table = run_hnn(args.out, tasks, data_dir=args.data_dir, steps=args.steps, seed=args.seed,
                    solver=args.solver, method=args.ivp_method,
                    eval_sampler=args.eval_sampler, verbose=True)
    print(table.read_text(), end="")
    print(f"table: {table}; pictures: {pathlib.Path(args.out)}/<task>/phase.png, energy.png")


def cmd_baselines_pixel_hnn(args):
    import json

    from hgn_tf.baselines.pixel_run import run_pixel_hnn

    result = run_pixel_hnn(args.out, schedule=args.schedule, steps=args.steps, seed=args.seed,
                           max_angle=args.max_angle, verbose=True)
    keys = ("latent_h_drift", "true_energy_drift", "true_energy_drift_readback_floor",
            "true_energy_typical_drift", "true_energy_typical_drift_readback_floor",
            "true_energy_error", "true_energy_error_readback_floor")
    print(json.dumps({k: result[k] for k in keys}, indent=1))
    print(f"pixel MSE x1e4 (30 frames): {result['pixel_mse_30_x1e4']:.1f} (mean training "
          f"frame: {result['mean_frame_mse_30_x1e4']:.1f}); "
          f"{pathlib.Path(args.out)}/metrics.json, latent.png, energy.png, rollout.png")


def cmd_baselines_hnn_conv(args):
    from hgn_tf.baselines.hnn_conv_run import run_hnn_conv

    run_hnn_conv(args.out, system=args.system, steps=args.steps, batch_size=args.batch_size,
                 preset=args.preset, learning_rate=args.learning_rate, data_dir=args.data_dir,
                 max_examples=args.max_examples, eval_sequences=args.eval_sequences,
                 seed=args.seed, verbose=True)
    out = pathlib.Path(args.out)
    print((out / "table.md").read_text(), end="")
    print(f"{out}/metrics.json, rollout_vs_truth.png, per_step_mse.png, table.md, model/")


def _add_baselines_parser(sub):
    from hgn_tf.baselines.evaluate import IVP_METHODS, SOLVERS
    from hgn_tf.baselines.tasks import EVAL_SAMPLERS, TASK_NAMES

    baselines = sub.add_parser("baselines", help="the models HGN is compared with").add_subparsers(
        dest="baseline", required=True, help="which baseline")
    p = baselines.add_parser("hnn", help="Hamiltonian Neural Network beside the baseline MLP on "
                                         "state-space tasks: energy-MSE table and pictures")
    p.add_argument("--task", nargs="+", choices=(*TASK_NAMES, "all"), default=["spring"],
                   help="the tasks (all: every one; default spring)")
    p.add_argument("--steps", type=int, default=None,
                   help="Adam steps per model (default: the official protocol's, 2,000 or "
                        "10,000)")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the weights, the batches and the 15 evaluation states "
                        "(default %(default)s)")
    p.add_argument("--out", default="runs/baselines",
                   help="output folder: table.md, <task>/ (default %(default)s)")
    p.add_argument("--data-dir", default=None, help="TFDS data dir (default ~/tensorflow_datasets)")
    p.add_argument("--solver", choices=SOLVERS, default="solve_ivp",
                   help="evaluation rollouts: scipy's solve_ivp once per initial state, or the "
                        "library's batched DOP853 (default %(default)s)")
    p.add_argument("--ivp-method", choices=IVP_METHODS, default="DOP853",
                   help="solve_ivp's method, at rtol = atol = 1e-12 (default %(default)s)")
    p.add_argument("--eval-sampler", choices=EVAL_SAMPLERS, default=None,
                   help="the 15 evaluation states: 'notebook' (the official notebooks' own: "
                        "spring and pendulum |q|, |p| in [0.2, 1]; two_body and three_body "
                        "their trials' random_config) or 'task' (the task's training "
                        "sampler); default: each task's own (notebook where a notebook scores "
                        "the task). Trained models are reused, so a second value only "
                        "evaluates again")
    p.set_defaults(func=cmd_baselines_hnn)

    from hgn_tf.baselines.pixel_run import SCHEDULES

    p = baselines.add_parser("pixel-hnn", help="PixelHNN on rendered pendulum frames: latent "
                                               "rollouts, their energy drift, pixel MSE")
    p.add_argument("--schedule", choices=tuple(SCHEDULES), default="staged",
                   help="official: all terms from the start; staged: the TF reproduction's "
                        "(autoencoder first, then CC, then HNN) (default %(default)s)")
    p.add_argument("--steps", type=int, default=3000,
                   help="Adam steps in all (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seeds data and weights (default 0)")
    p.add_argument("--max-angle", type=float, default=None,
                   help="initial angles ~ U(-A, A) and angular velocities ~ U(-1, 1), the "
                        "official gym protocol's small swings (official A: 0.5236 = pi / 6); "
                        "default: HGN's pendulum states (swings up to ~2.3 rad)")
    p.add_argument("--out", default="runs/pixel_hnn",
                   help="output folder (default %(default)s)")
    p.set_defaults(func=cmd_baselines_pixel_hnn)

    from hgn_tf.baselines.hnn_conv_run import PRESETS, SYSTEMS

    p = baselines.add_parser("hnn-conv", help="HNN-conv (HGN A.3): HGN's conv encoder/decoder "
                                              "around an HNN; Table 1 pixel MSE")
    p.add_argument("--system", choices=SYSTEMS, default="pendulum",
                   help="the dataset (default %(default)s)")
    p.add_argument("--steps", type=int, default=15_000,
                   help="Adam steps (default %(default)s, A.3's)")
    p.add_argument("--batch-size", type=int, default=64,
                   help="windows of 3 frames per step (default %(default)s, A.3's)")
    p.add_argument("--learning-rate", type=float, default=1e-3,
                   help="Adam's learning rate (default %(default)s)")
    p.add_argument("--preset", choices=tuple(PRESETS), default="paper",
                   help="network sizes: paper (HGN A.1) or smaller ones (default %(default)s)")
    p.add_argument("--max-examples", type=int, default=None,
                   help="build and use only the first N sequences of each split")
    p.add_argument("--eval-sequences", type=int, default=256,
                   help="sequences of each split scored (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seeds weights and batches (default 0)")
    p.add_argument("--out", default="runs/hnn_conv", help="output folder (default %(default)s)")
    p.add_argument("--data-dir", default=None, help="TFDS data dir (default ~/tensorflow_datasets)")
    p.set_defaults(func=cmd_baselines_hnn_conv)


def _add_data_args(p, positional_system=False):
    from hgn_tf.physics import SUPPORTED_RESOLUTIONS, SYSTEM_NAMES

    if positional_system:
        p.add_argument("system", choices=SYSTEM_NAMES, help="the physical system")
    else:
        p.add_argument("--system", choices=SYSTEM_NAMES, default="pendulum",
                       help="the physical system (default %(default)s)")
    p.add_argument("--resolution", type=int, choices=SUPPORTED_RESOLUTIONS, default=32,
                   help="pixels a side (default %(default)s)")
    p.add_argument(
        "--max-examples",
        type=int,
        default=None,
        help="build only the first N sequences of each split",
    )
    p.add_argument("--data-dir", default=None, help="TFDS data dir (default ~/tensorflow_datasets)")


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (argparse prints the usage first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from hgn_tf.config import (
        INPUT_MODES,
        INTEGRATORS,
        LR_SCHEDULES,
        PRECISIONS,
        PRESETS,
        STRATEGIES,
        VARIANTS,
    )
    from hgn_tf.physics import SYSTEM_NAMES

    parser = _Parser(prog="hgn", description="Hamiltonian Generative Networks.")
    sub = parser.add_subparsers(dest="command", required=True, help="the sub-command")

    data = sub.add_parser("data", help="datasets").add_subparsers(
        dest="data_command", required=True, help="what to do with a dataset"
    )
    p = data.add_parser("build", help="build a hamiltonian_systems dataset")
    _add_data_args(p)
    p.add_argument("--workers", type=int, default=None, help="threads (default: all cores)")
    p.add_argument("--rebuild", action="store_true",
                   help="delete this system's build in --data-dir first (e.g. a smaller one)")
    p.add_argument("--beam-runner", default=None,
                   help="generate on Apache Beam with this runner (DirectRunner, FnApiRunner, "
                        "DataflowRunner, FlinkRunner, SparkRunner, ...; needs the beam extra); "
                        "the records are the same as without")
    p.add_argument("--beam-workers", type=int, default=None,
                   help="Beam workers (local runners: processes; Dataflow: num_workers; Flink: "
                        "parallelism)")
    p.add_argument("--beam-option", action="append", default=[], metavar="KEY=VALUE",
                   help="another Beam pipeline option, e.g. project=P, region=R, "
                        "temp_location=gs://B/tmp, flink_master=H:8081 (repeatable)")
    p.set_defaults(func=cmd_data_build)
    p = data.add_parser("show", help="write a PNG grid and a GIF of stored sequences")
    _add_data_args(p, positional_system=True)
    p.set_defaults(max_examples=64)
    p.add_argument("--split", choices=("train", "test"), default="train",
                   help="which split to show (default %(default)s)")
    p.add_argument("--n", type=int, default=8, help="sequences to show (default %(default)s)")
    p.add_argument("--out", default="runs/data_show", help="output folder (default %(default)s)")
    p.set_defaults(func=cmd_data_show)
    p = data.add_parser("physics", help="read the state back from stored frames: scores (the "
                                        "floor of `hgn evaluate`'s physics) and pictures")
    _add_data_args(p, positional_system=True)
    p.set_defaults(max_examples=64)
    p.add_argument("--split", choices=("train", "test"), default="test",
                   help="which split to read (default %(default)s)")
    p.add_argument("--n", type=int, default=64,
                   help="sequences to score (default %(default)s)")
    p.add_argument("--show", type=int, default=4,
                   help="sequences to draw, tracks and energy (default %(default)s)")
    p.add_argument("--out", default="runs/data_physics",
                   help="output folder (default %(default)s)")
    p.set_defaults(func=cmd_data_physics)

    p = sub.add_parser("train", help="train an HGN with model.fit (resumes a killed run)")
    p.add_argument("--run-dir", required=True,
                   help="the run folder (again with the same folder: resume)")
    p.add_argument("--system", choices=SYSTEM_NAMES, default=None,
                   help="the physical system (default: the config's, else pendulum)")
    p.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help="the base config (default: small)")
    p.add_argument("--config", default=None,
                   help="a RunConfig JSON file as the base config (e.g. from `hgn tune`)")
    p.add_argument("--integrator", choices=INTEGRATORS, default=None,
                   help="the integrator of the learned dynamics (Table 1 varies it)")
    p.add_argument("--variant", choices=tuple(VARIANTS), default=None,
                   help="the Table 1 variant: full HGN, deterministic (no sampling), no-f-psi "
                        "(the posterior is over the state itself), direct (a network outputs "
                        "dq/dt, dp/dt; no Hamiltonian)")
    p.add_argument("--input-mode", choices=INPUT_MODES, default=None,
                   help="autoencode: the encoder reads every training frame; inference: it reads "
                        "the first --input-frames and the rest are predicted")
    p.add_argument("--input-frames", type=int, default=None,
                   help="frames the encoder reads in inference mode")
    p.add_argument("--frames", type=int, default=None,
                   help="frames per training sequence (at most 30, the stored length)")
    p.add_argument("--predictive-draws", type=int, default=None,
                   help="K: fit the mean of the decoded rollouts of K posterior draws (the "
                        "predictive mean) to the frames instead of one draw's rollout; K "
                        "rollouts and decodes per step (default 1, the paper's)")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="float32, or mixed_bfloat16: the encoder's and decoder's hidden convs in "
                        "bfloat16 (CPUs with AMX/AVX512-BF16, GPUs from Ampere on); the "
                        "Hamiltonian, the integrator and the objective stay float32")
    p.add_argument("--xla-steps", action=argparse.BooleanOptionalAction, default=None,
                   help="compile the integrator's step (and its gradient) with XLA: 6-8%% "
                        "faster training steps on a CPU, the same result to float32 tolerance "
                        "(default: on)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps in all")
    p.add_argument("--batch-size", type=int, default=None, help="sequences per step")
    p.add_argument("--learning-rate", type=float, default=None, help="Adam's step size")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=None,
                   help="constant, or cosine: the step size falls along a half cosine to "
                        "train.lr_final_fraction (0.1) of --learning-rate by the last step")
    p.add_argument("--strategy", choices=STRATEGIES, default=None,
                   help="tf.distribute strategy (mirrored: all local GPUs)")
    p.add_argument("--seed", type=int, default=None, help="seeds weights, sampling, shuffling")
    p.add_argument("--max-examples", type=int, default=None,
                   help="build and train on the first N sequences of each split")
    p.add_argument("--data-dir", default=None, help="TFDS data dir (default ~/tensorflow_datasets)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="metrics.json and pictures for a trained run")
    p.add_argument("--run-dir", required=True, help="a finished training run")
    p.add_argument("--horizon", type=int, default=None,
                   help="frames to roll out and score (default: all 30 stored frames)")
    p.add_argument("--max-sequences", type=int, default=512,
                   help="sequences of each split to score (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=32,
                   help="sequences per rollout call (default %(default)s)")
    p.add_argument("--prior", choices=("standard", "learned"), default="standard",
                   help="what samples start from: standard (z ~ N(0, I) through f_psi) or "
                        "learned (the run's prior from `hgn fit-prior`) (default %(default)s)")
    p.add_argument("--prediction-floor", action="store_true",
                   help="also score the best any model reading the same frames can do after "
                        "them: the true dynamics' expected frames given the noisy positions read")
    p.add_argument("--draws", type=int, default=None,
                   help="predict the mean of the decoded rollouts of N posterior draws; 0: "
                        "decode the posterior mean's rollout (default: the run's "
                        "--predictive-draws if above 1, else 0)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("fit-prior", help="fit a learned prior over the initial state to a "
                                         "trained run's encoded training set; saved in the run "
                                         "folder (prior.json, prior.weights.h5), used by "
                                         "`hgn evaluate --prior learned` and `hgn export`")
    p.add_argument("--run-dir", required=True, help="a finished training run (stochastic)")
    p.add_argument("--kind", choices=("gmm", "flow"), default="gmm",
                   help="gmm: a Gaussian mixture fitted by EM; flow: a RealNVP fitted by "
                        "maximum likelihood (default %(default)s)")
    p.add_argument("--components", type=int, default=64,
                   help="the mixture's components (gmm; default %(default)s)")
    p.add_argument("--covariance", choices=("full", "diag"), default="full",
                   help="each component's covariance (gmm; default %(default)s)")
    p.add_argument("--reg-covar", type=float, default=1e-3,
                   help="added to each standardised covariance's diagonal (gmm; default "
                        "%(default)s)")
    p.add_argument("--pca-dim", type=int, default=None,
                   help="EM in this many principal directions of the standardised states, the "
                        "rest given their mean variance (gmm, full; 0: all directions; "
                        "default: 32 for a full-covariance mixture)")
    p.add_argument("--coupling-layers", type=int, default=4,
                   help="the RealNVP's affine couplings (flow; default %(default)s)")
    p.add_argument("--steps", type=int, default=2000,
                   help="Adam steps (flow; default %(default)s)")
    p.add_argument("--samples-per-sequence", type=int, default=1,
                   help="posterior draws per encoded sequence (default %(default)s)")
    p.add_argument("--max-sequences", type=int, default=4096,
                   help="training sequences to encode (default %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the posterior draws and the fit (default %(default)s)")
    p.set_defaults(func=cmd_fit_prior)

    from hgn_tf.experiments import table1

    experiment = sub.add_parser("experiment", help="train and compare models: the papers' tables")
    kinds = experiment.add_subparsers(dest="experiment", required=True, help="which experiment")
    p = kinds.add_parser("table1", help="HGN's Table 1 and Table 2: every (system, variant) "
                                        "pair trained and scored on a 30-frame unroll (resumable)")
    p.add_argument("--scale", choices=tuple(table1.SCALES), default="cpu",
                   help="cpu: this machine, minutes per pair; paper: the paper's settings (a "
                        "GPU); tiny: seconds, for tests (default %(default)s)")
    p.add_argument("--protocol", choices=tuple(table1.PROTOCOLS), default="autoencode",
                   help="autoencode: the encoder reads all 30 frames and they are scored (the "
                        "paper's); prediction: it reads 5, frames 5-29 are scored")
    p.add_argument("--systems", nargs="+", choices=table1.SYSTEMS, default=table1.SYSTEMS,
                   help="the physical systems (default: all four of the paper)")
    p.add_argument("--variants", nargs="+", choices=tuple(table1.VARIANTS),
                   default=("leapfrog", "euler"),
                   help="the rows: an integrator of the full HGN, or deterministic, no-f-psi, "
                        "direct (default: leapfrog euler)")
    p.add_argument("--out", default="runs/table1",
                   help="the experiment folder; run again with it to resume (default %(default)s)")
    p.add_argument("--data-dir", default=None, help="TFDS data dir (default ~/tensorflow_datasets)")
    p.add_argument("--max-sequences", type=int, default=256,
                   help="sequences of each split scored per pair (default %(default)s)")
    p.add_argument("--predictive-draws", type=int, default=1,
                   help="K for every pair: fit the mean of K posterior draws' decoded rollouts "
                        "to the frames (default %(default)s, the paper's objective; `hgn train "
                        "--predictive-draws`)")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="every pair's arithmetic: float32 (default), or mixed_bfloat16, about "
                        "0.55 of the step time on CPUs with AMX (`hgn train --precision`)")
    p.set_defaults(func=cmd_experiment_table1)

    p = sub.add_parser("demo", help="the main job on a small config")
    p.add_argument("--out", default="runs/demo", help="output folder (default %(default)s)")
    p.add_argument("--steps", type=int, default=None, help="override the training steps")
    from hgn_tf import demo

    p.add_argument("--precision", choices=demo.PRECISION_CHOICES, default="auto",
                   help=f"auto (default): mixed_bfloat16 and {demo.BFLOAT16_RECIPE['steps']:,} "
                        "steps where the CPU has bfloat16 matrix units (AMX), else float32 and "
                        f"{demo.FLOAT32_RECIPE['steps']:,} steps")
    p.set_defaults(func=cmd_demo)

    _add_flows_parser(sub)
    _add_baselines_parser(sub)

    import importlib
    import importlib.util

    for extra in ("hgn_tf.export.cli", "hgn_tf.tuning.cli"):
        if importlib.util.find_spec(extra) is not None:
            importlib.import_module(extra).add_commands(sub)
    return parser


def run(argv=None) -> None:
    """Parse `argv` and run the sub-command; a user's mistake raises `hgn_tf.errors.HGNError`."""
    from hgn_tf.errors import HGNError

    _import_tensorflow_quietly()  # first: the parser reads choices from configs that import it
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except HGNError as e:  # name the flag the user typed when the error's field is one
        name = (e.field or "").rsplit(".", 1)[-1].removeprefix("--")
        name = {"out_dir": "out"}.get(name, name)  # library argument -> its flag's dest
        flag = "--" + name.replace("_", "-")
        if not name or not hasattr(args, name) or flag in str(e):
            raise
        raise type(e)(f"{flag}: {e}", e.field) from None


def main(argv=None) -> int:
    """`hgn`: a user's mistake (`hgn_tf.errors.HGNError`) is one line on stderr and exit 2."""
    from hgn_tf.errors import HGNError

    try:
        run(argv)
    except HGNError as e:
        words = sys.argv[1:] if argv is None else list(argv)  # parsed: a command exists
        command = (" ".join(words[:2]) if words[0] in ("data", "experiment", "baselines")
                   else words[0])
        print(f"hgn {command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
