"""HGN's Table 1 and Table 2 as a resumable experiment: train every (system, variant) pair, score it
on a 30-frame unroll, and write the tables beside the published numbers.

    run_table1(out, scale="cpu", protocol="autoencode", systems=..., variants=...)

Protocols (what the encoder reads and which frames are scored):

    autoencode   the paper's Table 1: 30-frame training sequences, the encoder reads all 30, and
                 the score is the pixel MSE over those 30 (reconstruction)
    prediction   the encoder reads the first 5 frames; the score is the pixel MSE over frames 5-29,
                 which it never read (the later benchmark's protocol, Botev et al. 2021)

Every pair is also scored on the other window (the frames read / after them) and by valid
prediction time; `table1.csv` has every figure. Beside the model rows: the mean-frame and
repeat-last baselines and a noise-floor row per system (the stored clean states rendered by the
dataset's renderer, scored against the test frames, which are rendered from the noisy states:
what a model of the clean dynamics would score). Under the prediction protocol the clean states
are more than a model can know from 5 noisy frames; there a prediction-floor row gives what the
true dynamics would score from what those frames show: the posterior-expected frames given the
noisy positions read (`prediction_floor`, `physics.inference`), the lowest expected pixel MSE any
model reading those frames can reach, and the best-fit state's sharp rollout beside it.

Layout of `out`:

    <protocol>/<system>/<variant>/      the pair's training run (config, backup, history, weights)
                                        and its eval/ (metrics.json, pictures); timing.json
    <protocol>/<system>/noise_floor.json
    prediction/<system>/prediction_floor.json
    <protocol>/table1.md, table1.csv, table2.md, vpt.md, physics.md

Resuming: run the same command again. A pair whose eval/metrics.json exists is not retrained; a
killed pair resumes its training from its last epoch (`hgn_tf.train`); the tables are rewritten
from the pairs' files after every pair, so they never hold a row that is not on disk.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import pathlib
import time

import keras
import numpy as np

from hgn_tf import config as C
from hgn_tf import data as data_lib
from hgn_tf import physics
from hgn_tf.errors import ConfigError, check, positive_int
from hgn_tf.evaluate import (
    PREDICTION_FLOOR_SAMPLES,
    evaluate,
    prediction_floor_frames,
    rollout_report,
)
from hgn_tf.experiments import reference
from hgn_tf.files import atomic_write_text
from hgn_tf.physics import STORED_FRAMES
from hgn_tf.train import train

__all__ = ["PROTOCOLS", "SCALES", "SYSTEMS", "VARIANTS", "floor_report", "noise_floor",
           "pair_config", "prediction_floor",
           "run_table1", "write_tables"]

SYSTEMS = ("mass_spring", "pendulum", "two_body", "three_body")
PREDICTION_INPUT_FRAMES = 5

# Table 1's rows: the model changes of each (the integrator variants are the full HGN).
VARIANTS = {
    "leapfrog": {"integrator": "leapfrog"},
    "euler": {"integrator": "euler"},
    "rk4": {"integrator": "rk4"},
    "yoshida": {"integrator": "yoshida"},
    "deterministic": C.VARIANTS["deterministic"],
    "no-f-psi": C.VARIANTS["no-f-psi"],
    "direct": C.VARIANTS["direct"],
}

PROTOCOLS = {
    "autoencode": {"data": {"n_frames": STORED_FRAMES}, "model": {"input_mode": "autoencode"}},
    "prediction": {"model": {"input_mode": "inference",
                             "input_frames": PREDICTION_INPUT_FRAMES}},
}
# The window each protocol is scored on (the other is reported too).
PRIMARY_WINDOW = {"autoencode": "read", "prediction": "after"}

# scale -> (system, variant) -> the pair's base config.
SCALES = {
    "tiny": lambda system, variant: C.tiny(system),  # tests: seconds per pair
    # This 2-core machine: leapfrog rows about 40 minutes, the others about 16.
    "cpu": lambda system, variant: C.cpu(system, long=variant == "leapfrog"),
    "paper": lambda system, variant: C.paper(system),  # HGN appendix A: a GPU, hours per pair
}


def pair_config(system: str, variant: str, *, scale: str, protocol: str,
                data_dir: str | None = None, predictive_draws: int = 1,
                precision: str = "float32") -> C.RunConfig:
    """The `RunConfig` of one (system, variant) pair.

    `predictive_draws` and `precision` are `ModelConfig`'s fields of those names, set on every
    pair (1 and float32: the paper's objective and arithmetic); a deterministic pair with
    `predictive_draws` > 1 is a ConfigError naming `predictive_draws`.
    """
    check(scale in SCALES, "scale", scale, f"one of {tuple(SCALES)}")
    check(protocol in PROTOCOLS, "protocol", protocol, f"one of {tuple(PROTOCOLS)}")
    check(variant in VARIANTS, "variants", variant, f"among {tuple(VARIANTS)}")
    cfg = SCALES[scale](system, variant)
    changes = {section: dict(fields) for section, fields in PROTOCOLS[protocol].items()}
    changes["model"] = {**changes.get("model", {}), **VARIANTS[variant],
                        "predictive_draws": predictive_draws, "precision": precision}
    if data_dir is not None:
        changes["data"] = {**changes.get("data", {}), "data_dir": data_dir}
    if protocol == "prediction" and cfg.data.n_frames <= PREDICTION_INPUT_FRAMES:
        changes["data"] = {**changes.get("data", {}), "n_frames": STORED_FRAMES}
    return cfg.replace(**changes)


def floor_report(system: str, q, frames, *, mean_frame, frames_read: int,
                 resolution: int = 32) -> dict:
    """The scores of the states `q` [N, T, dim], rendered by the dataset's renderer, as a
    prediction of `frames` [N, T, H, W, 3] in [0, 1] (`evaluate.rollout_report`'s figures)."""
    rendered = physics.render_states(physics.get(system), q, resolution) / np.float32(255)
    return rollout_report(rendered, frames, None, mean_frame=mean_frame, frames_read=frames_read)


def noise_floor(cfg: C.RunConfig, frames_read: int, max_sequences: int) -> dict:
    """The stored clean states, rendered, scored against the frames (rendered from the noisy
    states) over a 30-frame unroll: what a perfect model of the clean dynamics would score."""
    data_cfg = dataclasses.replace(cfg.data, n_frames=STORED_FRAMES)
    train_frames = data_lib.load_arrays(data_cfg, "train", limit=max_sequences)["frames"]
    mean_frame = train_frames.mean(axis=(0, 1))
    out = {}
    for split in ("train", "test"):
        arrays = data_lib.load_arrays(data_cfg, split, keys=("frames", "q"), limit=max_sequences)
        out[split] = floor_report(cfg.data.system, arrays["q"], arrays["frames"],
                                  mean_frame=mean_frame, frames_read=frames_read,
                                  resolution=data_cfg.resolution)
    return out


def prediction_floor(cfg: C.RunConfig, frames_read: int, max_sequences: int,
                     n_samples: int = PREDICTION_FLOOR_SAMPLES, seed: int = 0) -> dict:
    """The best any model that reads the first `frames_read` frames can score on the rest under
    pixel MSE (`evaluate.prediction_floor_frames`: the true dynamics' expected frames given the
    noisy positions those frames were rendered from), scored against the frames over a 30-frame
    unroll; and the best-fit state's sharp rollout beside it (`"fit"`)."""
    data_cfg = dataclasses.replace(cfg.data, n_frames=STORED_FRAMES)
    splits = {split: data_lib.load_arrays(data_cfg, split, keys=("frames", "q_noisy", "t"),
                                          limit=max_sequences) for split in ("train", "test")}
    mean_frame = splits["train"]["frames"].mean(axis=(0, 1))
    out = {}
    for split, arrays in splits.items():
        frames = arrays["frames"]
        post = prediction_floor_frames(cfg.data.system, arrays["q_noisy"], arrays["t"][0],
                                       frames_read, resolution=data_cfg.resolution,
                                       n_samples=n_samples, seed=seed)
        report = rollout_report(post["frames"], frames, None, mean_frame=mean_frame,
                                frames_read=frames_read)
        report.update(n_samples=n_samples,
                      ess_median=float(np.median(post["ess"])),
                      chi2_median=float(np.median(post["chi2"])),
                      fit=floor_report(cfg.data.system, post["fit_q"], frames,
                                      mean_frame=mean_frame, frames_read=frames_read,
                                      resolution=data_cfg.resolution))
        out[split] = report
    return out


def _write_json(path: pathlib.Path, value) -> None:
    atomic_write_text(path, json.dumps(value, indent=2) + "\n")


def run_table1(out, *, scale: str = "cpu", protocol: str = "autoencode", systems=SYSTEMS,
               variants=("leapfrog", "euler"), data_dir: str | None = None,
               max_sequences: int = 256, predictive_draws: int = 1,
               precision: str = "float32", verbose: bool = True) -> dict:
    """Train and score every (system, variant) pair not yet done; write the tables.

    `predictive_draws`, `precision`: set on every pair (`pair_config`). A pair folder holding
    a run of another config is refused by `hgn_tf.train` (name another `out` for another
    recipe).

    Returns:
      {(system, variant): metrics} of every finished pair of this call's grid.
    """
    positive_int("max_sequences", max_sequences)
    systems, variants = tuple(systems), tuple(variants)
    check(bool(systems), "systems", systems, "at least one system")
    check(bool(variants), "variants", variants, "at least one variant")
    for system in systems:
        check(system in physics.SYSTEM_NAMES, "systems", system, f"among {physics.SYSTEM_NAMES}")
    configs = {(s, v): pair_config(s, v, scale=scale, protocol=protocol, data_dir=data_dir,
                                   predictive_draws=predictive_draws, precision=precision)
               for s in systems for v in variants}  # every config checked before any training
    root = pathlib.Path(out) / protocol
    results = {}
    for (system, variant), cfg in configs.items():
        pair = root / system / variant
        metrics_path = pair / "eval" / "metrics.json"
        if not metrics_path.exists():
            _say(verbose, f"{protocol}/{system}/{variant}: training {cfg.train.steps} steps")
            train(cfg, pair, verbose=2 if verbose else 0,
                  callbacks=[_TrainClock(pair / "timing.json")])
            # Where the encoder reads fewer frames than are scored, the pair's pictures draw
            # the prediction floor's rows under the model's (as `hgn evaluate --prediction-floor`).
            evaluate(pair, horizon=STORED_FRAMES, max_sequences=max_sequences, verbose=False,
                     prediction_floor=cfg.conditioning_frames < STORED_FRAMES)
        results[(system, variant)] = json.loads(metrics_path.read_text())
        floor_path = root / system / "noise_floor.json"
        if not floor_path.exists():
            _write_json(floor_path, noise_floor(cfg, cfg.conditioning_frames, max_sequences))
        posterior_path = root / system / "prediction_floor.json"
        if cfg.conditioning_frames < STORED_FRAMES and not posterior_path.exists():
            _write_json(posterior_path, prediction_floor(cfg, cfg.conditioning_frames,
                                                         max_sequences))
        write_tables(root, protocol)
        _say(verbose, f"{protocol}/{system}/{variant}: done; tables in {root}")
    return results


class _TrainClock(keras.callbacks.Callback):
    """Adds each finished epoch's wall time to `path` ({"train_seconds": ...}): a pair trained
    over several (killed and resumed) processes counts the epochs it kept, once each."""

    def __init__(self, path: pathlib.Path):
        super().__init__()
        self.path = path

    def on_train_begin(self, logs=None):
        self._mark = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        spent = json.loads(self.path.read_text())["train_seconds"] if self.path.exists() else 0.0
        _write_json(self.path, {"train_seconds": spent + now - self._mark})
        self._mark = now


def _say(verbose: bool, message: str) -> None:
    if verbose:
        print(f"[experiment {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------------------------- tables
def _pairs(root: pathlib.Path):
    """{system: {variant: (metrics, timing)}} of the finished pairs under `root`."""
    found = {}
    for system in physics.SYSTEM_NAMES:
        for variant in VARIANTS:
            path = root / system / variant / "eval" / "metrics.json"
            if path.exists():
                timing = root / system / variant / "timing.json"
                found.setdefault(system, {})[variant] = (
                    json.loads(path.read_text()),
                    json.loads(timing.read_text()) if timing.exists() else {})
    return found


def _floors(root: pathlib.Path, systems, name: str = "noise_floor") -> dict:
    return {s: json.loads((root / s / f"{name}.json").read_text()) for s in systems
            if (root / s / f"{name}.json").exists()}


def _cell(split_report: dict, window: str) -> str:
    w = split_report if window == "all" else split_report.get(window)
    if w is None:
        return "-"
    return f"{w['pixel_mse'] * 1e4:.2f} +- {w['pixel_mse_std'] * 1e4:.2f}"


def _published(table: dict, variant: str, system: str) -> str:
    pair = table.get(variant, {}).get(system)
    return "-" if pair is None else f"{pair[0]:g} / {pair[1]:g}"


def write_tables(root, protocol: str) -> None:
    """table1.md, table1.csv, table2.md, vpt.md and physics.md from the pairs' files under
    `root`."""
    check(protocol in PROTOCOLS, "protocol", protocol, f"one of {tuple(PROTOCOLS)}")
    root = pathlib.Path(root)
    pairs = _pairs(root)
    systems = [s for s in physics.SYSTEM_NAMES if s in pairs]
    if not systems:
        raise ConfigError(f"`root` {str(root)!r} holds no finished pair.", "root")
    floors = _floors(root, systems)
    posterior = _floors(root, systems, "prediction_floor")
    window = PRIMARY_WINDOW[protocol]
    variants = [v for v in VARIANTS if any(v in pairs[s] for s in systems)]
    any_metrics = next(iter(pairs[systems[0]].values()))[0]
    k = any_metrics["frames_read"]
    scored = f"frames 0-{k - 1} (read by the encoder)" if window == "read" else \
        f"frames {k}-{STORED_FRAMES - 1} (after the {k} the encoder read)"
    repro = reference.REPRO_TABLE1[protocol]

    def model_row(name, reports):
        cells = []
        for s in systems:
            r = reports.get(s)
            if r is None:
                cells += ["-", "-"]
                continue
            ratio = r["test"] if window == "all" else r["test"].get(window, {})
            cells += [f"{_cell(r['train'], window)} / {_cell(r['test'], window)}",
                      f"{ratio.get('ratio_to_mean_frame', float('nan')):.2f}x"]
        return f"| {name} | " + " | ".join(cells) + " |"

    head = "| model | " + " | ".join(f"{s} train / test | / mean frame" for s in systems) + " |"
    lines = [f"# Table 1, {protocol} protocol: pixel MSE x1e4 on {scored}",
             "", "Mean +- std over sequences, train / test; `/ mean frame` is the test ratio to "
             "the mean-frame baseline (below 1 beats it).", "", head,
             "|" + " --- |" * (1 + 2 * len(systems))]
    for v in variants:
        lines.append(model_row(f"HGN {v}", {s: pairs[s][v][0] for s in systems if v in pairs[s]}))
    for key, name in (("baseline_mean_frame_mse", "mean frame"),
                      ("baseline_repeat_last_mse", f"repeat frame {k - 1}")):
        cells = []
        for s in systems:
            r = next(iter(pairs[s].values()))[0]
            w = [r[sp] if window == "all" else r[sp][window] for sp in ("train", "test")]
            ratio = w[1][key] / w[1]["baseline_mean_frame_mse"]
            cells += [f"{w[0][key] * 1e4:.2f} / {w[1][key] * 1e4:.2f}", f"{ratio:.2f}x"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append(model_row("noise floor (clean states rendered)", floors))
    if posterior:
        lines.append(model_row(f"prediction floor (true dynamics: the expected frame given the {k} "
                               "frames read)", posterior))
        lines.append(model_row("same, the best-fit state's sharp rollout",
                               {s: {sp: r[sp]["fit"] for sp in ("train", "test")}
                                for s, r in posterior.items()}))
    lines += ["", "Published (x1e4, train / test; the paper scores the 31 frames its encoder read,"
              " the reproduction the frames of its protocol):", "",
              "| model | " + " | ".join(systems) + " |", "|" + " --- |" * (1 + len(systems))]
    for v in variants:
        if v in reference.HGN_TABLE1 and protocol == "autoencode":
            lines.append(f"| HGN paper, {v} | " + " | ".join(
                _published(reference.HGN_TABLE1, v, s) for s in systems) + " |")
    lines.append(f"| [Re] HGN, leapfrog, {protocol} | " + " | ".join(
        "-" if s not in repro else f"{repro[s][0]:g} / {repro[s][1]:g}" for s in systems) + " |")
    for v in variants:  # [Re] HGN's Table 2: the pendulum's test MSE per integrator
        if protocol == "autoencode" and v in reference.REPRO_PENDULUM_INTEGRATORS \
                and v != "leapfrog" and "pendulum" in systems:
            mse = reference.REPRO_PENDULUM_INTEGRATORS[v][0]
            lines.append(f"| [Re] HGN, {v}, pendulum (their Table 2) | " + " | ".join(
                f"- / {mse:g}" if s == "pendulum" else "-" for s in systems) + " |")
    (root / "table1.md").write_text("\n".join(lines) + "\n")

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["system", "model", "split", "window", "frames", "pixel_mse",
                     "pixel_mse_std", "ratio_to_mean_frame", "baseline_mean_frame_mse",
                     "baseline_repeat_last_mse", "vpt_mean", "vpt_median",
                     "hamiltonian_variance", "train_minutes"])
    for s in systems:
        rows = [(v, *pairs[s][v]) for v in variants if v in pairs[s]]
        if s in floors:
            rows.append(("noise_floor", floors[s], {}))
        if s in posterior:
            rows.append(("prediction_floor", posterior[s], {}))
            rows.append(("prediction_floor_fit", {sp: posterior[s][sp]["fit"]
                                                 for sp in ("train", "test")}, {}))
        for name, m, timing in rows:
            minutes = timing.get("train_seconds", float("nan")) / 60
            for split in ("train", "test"):
                r = m[split]
                for wname in ("all", "read", "after"):
                    w = r if wname == "all" else r.get(wname)
                    if w is None:
                        continue
                    writer.writerow([
                        s, name, split, wname, w["n_frames"], w["pixel_mse"],
                        w["pixel_mse_std"], w["ratio_to_mean_frame"],
                        w["baseline_mean_frame_mse"], w["baseline_repeat_last_mse"],
                        r["vpt"], r["vpt_median"], r.get("hamiltonian_variance", ""),
                        f"{minutes:.1f}"])
    atomic_write_text(root / "table1.csv", buffer.getvalue())

    lines = ["# Table 2: variance of the learned Hamiltonian along 30-frame rollouts, x1e4",
             "", "Mean over sequences of Var_t H(q_t, p_t), train / test; the paper's Table 2 "
             "beside it (one train and one test rollout each).", "",
             "| model | " + " | ".join(f"{s} | paper" for s in systems) + " |",
             "|" + " --- |" * (1 + 2 * len(systems))]
    for v in variants:
        cells = []
        for s in systems:
            m = pairs[s].get(v, (None,))[0]
            hv = None if m is None else m["train"].get("hamiltonian_variance")
            cells.append("-" if hv is None else
                         f"{hv * 1e4:.3g} / {m['test']['hamiltonian_variance'] * 1e4:.3g}")
            cells.append(_published(reference.HGN_TABLE2, v, s))
        if any(c != "-" for c in cells[::2]):
            lines.append(f"| HGN {v} | " + " | ".join(cells) + " |")
    (root / "table2.md").write_text("\n".join(lines) + "\n")

    lines = ["# Valid prediction time (test), frames of 30: mean / median", "",
             "The first frame whose MSE / mean(truth^2) exceeds 0.025 (Botev et al. 2021); the "
             "mean hides the sequences that fail at frame 0.", "",
             "| model | " + " | ".join(systems) + " |", "|" + " --- |" * (1 + len(systems))]
    rows = [(f"HGN {v}", {s: pairs[s][v][0] for s in systems if v in pairs[s]})
            for v in variants] + [("noise floor", floors)]
    if posterior:
        rows += [("prediction floor (expected frame)", posterior),
                 ("prediction floor (best fit, sharp)",
                  {s: {"test": r["test"]["fit"]} for s, r in posterior.items()})]
    for name, reports in rows:
        lines.append(f"| {name} | " + " | ".join(
            "-" if s not in reports else _vpt_cell(reports[s]["test"]) for s in systems) + " |")
    (root / "vpt.md").write_text("\n".join(lines) + "\n")
    _write_physics_table(root, pairs, systems, variants)


def _vpt_cell(split_report: dict) -> str:
    """"mean / median" VPT: the mean to 0.1 frame; the median exact (a median of an even number
    of sequences can fall half-way between two frames: 17.5, not rounded to 18)."""
    return f"{split_report['vpt']:.1f} / {split_report['vpt_median']:g}"


def _physics_cell(report: dict | None) -> str:
    """found / energy relative variance (median) [/ position error, px] of a physics report."""
    if not report:
        return "-"
    var = report.get("energy_rel_var_median")
    cell = f"{report['found_fraction']:.3f} / " + ("-" if var is None else f"{var:.3g}")
    if report.get("position_error_px") is not None:
        cell += f" / {report['position_error_px']:.2f} px"
    return cell


def _write_physics_table(root: pathlib.Path, pairs: dict, systems, variants) -> None:
    """physics.md: the physics read back from the frames (`hgn_tf.plausibility`) of the test
    rollouts and of samples from N(0, I), beside the stored frames and the clean render."""
    lines = ["# Physics read back from the frames (test split; `hgn_tf.plausibility`)", "",
             "Each cell: the fraction of frames where every body is found / the median over "
             "sequences of the true energy's relative variance Var_t E / mean_t(E)^2 [/ the mean "
             "position error against the true states, pixels]. Rollouts: the 30-frame unroll "
             "scored in table1.md; samples: from N(0, I) (`hgn fit-prior` and "
             "`hgn evaluate --prior learned` for a learned prior). The stored frames are rendered "
             "from noisy states (their finite-difference energy is noisy); the clean render is "
             "the floor a perfect model reaches.", "",
             "| model | " + " | ".join(systems) + " |", "|" + " --- |" * (1 + len(systems))]

    def row(name, pick):
        cells = []
        for s in systems:
            reports = [pick(m) for v, (m, _) in pairs[s].items() if v in variants]
            cells.append(_physics_cell(next((r for r in reports if r), None)))
        return f"| {name} | " + " | ".join(cells) + " |"

    for v in variants:
        for what, pick in (("rollouts", lambda m: m["test"].get("physics", {}).get("model")),
                           ("samples, N(0, I)", lambda m: m.get("samples", {}).get("physics"))):
            cells = [_physics_cell(pick(pairs[s][v][0]) if v in pairs[s] else None)
                     for s in systems]
            lines.append(f"| HGN {v}, {what} | " + " | ".join(cells) + " |")
    lines.append(row("stored frames", lambda m: m["test"].get("physics", {}).get("truth")))
    lines.append(row("clean states rendered", lambda m: m["test"].get("physics", {}).get("clean")))
    (root / "physics.md").write_text("\n".join(lines) + "\n")
