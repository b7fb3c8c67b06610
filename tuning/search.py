"""Run a keras-tuner search over GECO settings and write its report.

    run_search(base, out_dir, algorithm="bayesian", max_trials=10, steps_per_trial=200)

`out_dir` holds:
    search_config.json   what identifies the search (base config, algorithm, budget, seed, bound);
                         resuming checks it
    trials/              keras-tuner's project (oracle.json, trial_<id>/trial.json, checkpoints)
    results.csv          one row per trial, by id: id, status, each hyperparameter, steps trained,
                         val_recon, val_kl, whether the KL is in bound, multiplier, score, note
    results.md           the same table in Markdown, best first
    recon_vs_kl.png      validation recon vs KL of every completed trial
    best_config.json     the full `RunConfig` of the best trial, for `hgn train --config FILE`

Every trial starts from `base` (same architecture, data and seed, hence the same initial weights
and data order) and trains `steps_per_trial` optimiser steps (Hyperband: up to that many),
validating on `base.train.validation_steps` batches of the validation split after each epoch of
`steps_per_epoch` steps; the objective is read after the last epoch (`hgn_tf.tuning.hypermodel`).
`best_config.json` keeps `base.train.steps` (the length of a real training run), not the trial
budget. `evaluate_config` trains one config with exactly a trial's budget and measurement (for
baselines).

Algorithms (keras-tuner's own tuners):
    random      `keras_tuner.RandomSearch`, `max_trials` trials.
    bayesian    `keras_tuner.BayesianOptimization` (a Gaussian process), `max_trials` trials of
                which the first max(2, max_trials // 3) are random (keras-tuner's default, 3 per
                hyperparameter, would leave a short search purely random).
    hyperband   `keras_tuner.Hyperband`, factor 3, one sweep; its resource is the epoch:
                max_epochs = steps_per_trial / steps_per_epoch (default steps_per_epoch:
                steps_per_trial // 9, i.e. 9 epochs and three brackets); later rounds continue
                the best trials of a bracket from their checkpoints. `max_trials` caps the number
                of trials (a full sweep of 9 epochs has 23).

Failed trials: a diverged trial raises `FailedTrialError` (FAILED in the table) and the search
goes on; `max_consecutive_failed_trials` defaults to `max_trials`, so failures never stop it.

Resuming: tuners are created with `overwrite=False`, so running the same search again on the same
`out_dir` (e.g. after a kill) reloads the oracle and continues; an interrupted trial runs again
from its start. Raising `max_trials` extends a finished search.

Distributed search (keras-tuner's chief / worker mode, over gRPC; needs `grpcio`): run the same
command in every process, all sharing `out_dir` (one file system), with the environment

    KERASTUNER_ORACLE_IP=<chief's address>  KERASTUNER_ORACLE_PORT=<free port>
    KERASTUNER_TUNER_ID=chief              one process: serves the oracle, trains nothing
    KERASTUNER_TUNER_ID=tuner0, tuner1...  workers: each asks the chief for trials and trains them

The chief returns once every trial has ended (it polls every 20 s once the last trial is handed
out) and writes the report; workers return None. Build the data once before starting the workers
(`hgn data build`, same --max-examples / --data-dir): concurrent TFDS builds of one folder race.
The chief's gRPC port is insecure (unauthenticated): bind it to a trusted network only
(127.0.0.1 on one machine).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import pathlib

import keras_tuner
from hgn_tf.tuning.hypermodel import OBJECTIVE, GecoHyperModel, KLBound

from hgn_tf import data as data_lib
from hgn_tf import train as train_lib
from hgn_tf.config import RunConfig
from hgn_tf.errors import ConfigError, DataError, RunError, check, folder, positive_int

__all__ = [
    "ALGORITHMS",
    "HYPERPARAMETERS",
    "PROJECT_NAME",
    "SearchResults",
    "TrialResult",
    "collect_results",
    "distributed_role",
    "evaluate_config",
    "run_search",
    "write_report",
]

ALGORITHMS = ("random", "bayesian", "hyperband")
HYPERPARAMETERS = ("mode", "kappa", "alpha", "initial_multiplier", "nu", "beta", "learning_rate")
PROJECT_NAME = "trials"
HYPERBAND_FACTOR = 3
SEARCH_CONFIG_FILE = "search_config.json"


@dataclasses.dataclass(frozen=True)
class TrialResult:
    """One row of the results table.

    `values` maps each hyperparameter to the value the trial used, or None where it does not
    apply (GECO settings in fixed-beta mode, beta in GECO mode). Metrics are None for trials that
    did not complete.
    """

    trial_id: str
    status: str
    values: dict
    config: RunConfig
    steps: int
    continues: str
    val_recon: float | None
    val_kl: float | None
    kl_in_bound: bool | None
    multiplier: float | None
    score: float | None
    note: str


@dataclasses.dataclass(frozen=True)
class SearchResults:
    trials: list
    best: TrialResult | None
    out_dir: pathlib.Path

    @property
    def best_config(self) -> RunConfig | None:
        return self.best.config if self.best is not None else None

    @property
    def completed(self) -> list:
        return [t for t in self.trials if t.status == "COMPLETED"]

    @property
    def failed(self) -> list:
        return [t for t in self.trials if t.status == "FAILED"]


def distributed_role() -> str:
    """"local", "chief" or "worker", from keras-tuner's `KERASTUNER_*` environment variables."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "local"
    return "chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") else "worker"


def _budget(algorithm, steps_per_trial, steps_per_epoch, base: RunConfig):
    """(steps_per_epoch, epochs) of one full trial."""
    positive_int("steps_per_trial", steps_per_trial)
    if steps_per_epoch is None:
        if algorithm == "hyperband":
            steps_per_epoch = max(1, steps_per_trial // 9)
        else:
            steps_per_epoch = min(base.train.steps_per_epoch, steps_per_trial)
    positive_int("steps_per_epoch", steps_per_epoch)
    check(steps_per_epoch <= steps_per_trial, "steps_per_epoch", steps_per_epoch,
          f"at most `steps_per_trial` ({steps_per_trial})")
    epochs = math.ceil(steps_per_trial / steps_per_epoch)
    if algorithm == "hyperband" and epochs < HYPERBAND_FACTOR:
        raise ConfigError(
            f"Hyperband needs at least {HYPERBAND_FACTOR} epochs per full trial (its resource), "
            f"got steps_per_trial={steps_per_trial} / steps_per_epoch={steps_per_epoch} = "
            f"{epochs}; lower `steps_per_epoch` or raise `steps_per_trial`.", "steps_per_epoch")
    return steps_per_epoch, epochs


def _fit_arguments(base: RunConfig, steps_per_epoch: int, epochs: int, verbose):
    """The positional and keyword arguments of every trial's `model.fit`."""
    if base.data.validation_fraction <= 0:
        raise ConfigError("Tuning scores trials on the validation split: "
                          f"`data.validation_fraction` must be > 0, got "
                          f"{base.data.validation_fraction!r}.", "data.validation_fraction")
    data_lib.build(base.data)
    t = base.train
    train_ds = data_lib.pipeline(data_lib.load(base.data, "train"), t.batch_size,
                                 shuffle_buffer=base.data.shuffle_buffer, seed=t.seed, repeat=True)
    val_ds = data_lib.pipeline(data_lib.load(base.data, "validation"), t.batch_size, repeat=True)
    return (train_ds,), {"validation_data": val_ds, "epochs": epochs,
                         "steps_per_epoch": steps_per_epoch,
                         "validation_steps": t.validation_steps, "verbose": verbose,
                         "shuffle": False}  # the pipeline shuffles


def _check_search_config(out_dir: pathlib.Path, identity: dict) -> None:
    """Refuse to resume a search made with other settings; record them for a new search."""
    path = out_dir / SEARCH_CONFIG_FILE
    identity = json.loads(json.dumps(identity))
    if path.exists():
        saved = json.loads(path.read_text())
        if saved != identity:
            differ = sorted(k for k in set(saved) | set(identity)
                            if saved.get(k) != identity.get(k))
            raise RunError(
                f"`out_dir` {str(out_dir)!r} holds a search with other settings (differing: "
                f"{differ}); resume it with the same arguments or choose a new output folder.")
        return
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(identity, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _make_tuner(algorithm, hypermodel, out_dir, max_trials, epochs, seed, max_failures):
    common = {"hypermodel": hypermodel, "objective": OBJECTIVE, "seed": seed,
              "directory": str(out_dir), "project_name": PROJECT_NAME, "overwrite": False,
              "max_consecutive_failed_trials": max_failures}
    if algorithm == "random":
        return keras_tuner.RandomSearch(max_trials=max_trials, **common)
    if algorithm == "bayesian":
        return keras_tuner.BayesianOptimization(
            max_trials=max_trials, num_initial_points=max(2, max_trials // 3), **common)
    tuner = keras_tuner.Hyperband(max_epochs=epochs, factor=HYPERBAND_FACTOR,
                                  hyperband_iterations=1, **common)
    # The Hyperband oracle sizes its brackets from max_epochs; the base Oracle's max_trials (not
    # an argument of Hyperband) stops the search after that many trials.
    tuner.oracle.max_trials = max_trials
    return tuner


def run_search(base: RunConfig, out_dir, *, algorithm: str = "bayesian", max_trials: int = 10,
               steps_per_trial: int = 200, steps_per_epoch: int | None = None, seed: int = 1,
               tune_learning_rate: bool = False, kl_bound: KLBound | None = None,
               max_consecutive_failed_trials: int | None = None, verbose=0,
               hypermodel_class=GecoHyperModel) -> SearchResults | None:
    """Search GECO settings for `base` and write the report into `out_dir` (see module docstring).

    Args:
      base: the config every trial starts from (`hgn_tf.config.small(system)`, say).
      out_dir: the search folder (created; an existing search there is resumed).
      algorithm: one of `ALGORITHMS`.
      max_trials: trials in all (Hyperband: a cap).
      steps_per_trial: optimiser steps of a full trial.
      steps_per_epoch: steps between validations (default: see module docstring).
      seed: the oracle's seed, >= 1 (the trials' weights and data use `base.train.seed`).
      tune_learning_rate: also search Adam's learning rate.
      kl_bound: the objective's KL bound (default `KLBound()`).
      max_consecutive_failed_trials: stop after that many failures in a row (default
        `max_trials`: never).
      verbose: keras-tuner's and `model.fit`'s verbosity.
      hypermodel_class: `GecoHyperModel` or a subclass (called with `base`,
        `tune_learning_rate=`, `kl_bound=`).

    Returns:
      `SearchResults` (None in a distributed worker: the chief reports).

    Raises:
      ConfigError: an invalid argument.
      RunError: an `out_dir` holding another search.
    """
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"`algorithm` must be one of {ALGORITHMS}, got {algorithm!r}.")
    positive_int("max_trials", max_trials)
    check(isinstance(seed, int) and not isinstance(seed, bool) and seed > 0, "seed", seed,
          "a positive integer (keras-tuner's oracles draw a random seed for 0)")
    if max_consecutive_failed_trials is None:
        max_consecutive_failed_trials = max_trials
    positive_int("max_consecutive_failed_trials", max_consecutive_failed_trials)
    steps_per_epoch, epochs = _budget(algorithm, steps_per_trial, steps_per_epoch, base)
    kl_bound = KLBound() if kl_bound is None else kl_bound
    # Checked before anything is written: a bad folder leaves no search folder behind.
    out_dir = folder("out_dir", out_dir)
    if base.data.data_dir is not None:
        folder("data_dir", base.data.data_dir, DataError)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_search_config(out_dir, {
        "base": base.to_dict(), "algorithm": algorithm, "steps_per_trial": steps_per_trial,
        "steps_per_epoch": steps_per_epoch, "seed": seed,
        "tune_learning_rate": bool(tune_learning_rate),
        "kl_bound": dataclasses.asdict(kl_bound), "hypermodel": hypermodel_class.__name__,
    })
    hypermodel = hypermodel_class(base, tune_learning_rate=tune_learning_rate, kl_bound=kl_bound)
    tuner = _make_tuner(algorithm, hypermodel, out_dir, max_trials, epochs, seed,
                        max_consecutive_failed_trials)
    role = distributed_role()
    if role == "chief":  # serves the oracle until every trial has ended; trains nothing
        tuner.search(verbose=verbose)
    else:
        args, kwargs = _fit_arguments(base, steps_per_epoch, epochs, verbose)
        tuner.search(*args, **kwargs)
    if role == "worker":
        return None
    results = collect_results(tuner.oracle, hypermodel, steps_per_epoch=steps_per_epoch,
                              epochs=epochs, out_dir=out_dir)
    write_report(results, hypermodel)
    return results


def evaluate_config(cfg: RunConfig, *, steps_per_trial: int, steps_per_epoch: int | None = None,
                    kl_bound: KLBound | None = None, verbose=0) -> dict:
    """Train `cfg` exactly like one (random / Bayesian) search trial and measure it the same way.

    For baselines: the same data pipelines, budget, validation and objective as `run_search`.

    Returns:
      {"status": "COMPLETED", "val_score", "val_recon", "val_kl", "recon", "kl", "multiplier"},
      or {"status": "FAILED", "note": why} for a diverged run.
    """
    steps_per_epoch, epochs = _budget("random", steps_per_trial, steps_per_epoch, cfg)
    args, kwargs = _fit_arguments(cfg, steps_per_epoch, epochs, verbose)
    hypermodel = GecoHyperModel(cfg, kl_bound=KLBound() if kl_bound is None else kl_bound)
    model = train_lib.build_model(cfg)
    try:
        metrics = hypermodel.fit(None, model, *args, **kwargs)
    except keras_tuner.errors.FailedTrialError as e:
        return {"status": "FAILED", "note": str(e)}
    return {"status": "COMPLETED", **metrics}


def _last(trial, name):
    if trial.metrics.exists(name):
        value = trial.metrics.get_last_value(name)
        return None if value is None else float(value)
    return None


def _note(trial) -> str:
    """The last line of a failed trial's traceback (the exception), without its class name."""
    lines = [line.strip() for line in (trial.message or "").splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1].split(": ", 1)[-1] if "Error: " in lines[-1] else lines[-1]


def _used_values(cfg: RunConfig, tune_learning_rate: bool) -> dict:
    g = cfg.geco
    geco = g.mode == "geco"
    values = {"mode": g.mode,
              "kappa": g.kappa if geco else None,
              "alpha": g.alpha if geco else None,
              "initial_multiplier": g.initial_multiplier if geco else None,
              "nu": g.nu if geco else None,
              "beta": None if geco else g.beta}
    if tune_learning_rate:
        values["learning_rate"] = cfg.train.learning_rate
    return values


def collect_results(oracle, hypermodel: GecoHyperModel, *, steps_per_epoch: int, epochs: int,
                    out_dir) -> SearchResults:
    """Every trial of `oracle` as a `TrialResult`, and the best completed one."""
    rows = []
    for trial_id in sorted(oracle.trials, key=lambda i: (len(i), i)):  # "9" before "10"
        trial = oracle.trials[trial_id]
        hp = trial.hyperparameters.copy()
        cfg = hypermodel.config(hp)
        val_kl = _last(trial, "val_kl")
        rows.append(TrialResult(
            trial_id=trial_id,
            status=str(trial.status),
            values=_used_values(cfg, hypermodel.tune_learning_rate),
            config=cfg,
            steps=int(hp.values.get("tuner/epochs", epochs)) * steps_per_epoch,
            continues=str(hp.values.get("tuner/trial_id", "") or ""),
            val_recon=_last(trial, "val_recon"),
            val_kl=val_kl,
            kl_in_bound=None if val_kl is None else hypermodel.kl_bound.contains(val_kl),
            multiplier=_last(trial, "multiplier"),
            score=None if trial.score is None else float(trial.score),
            note=_note(trial) if str(trial.status) != "COMPLETED" else "",
        ))
    best_trials = oracle.get_best_trials(1)
    best = None
    if best_trials:
        best = next(r for r in rows if r.trial_id == best_trials[0].trial_id)
    return SearchResults(trials=rows, best=best, out_dir=pathlib.Path(out_dir))


def _columns(results: SearchResults) -> list:
    names = [h for h in HYPERPARAMETERS if any(h in r.values for r in results.trials)]
    cols = ["trial", "status", *names, "steps"]
    if any(r.continues for r in results.trials):
        cols.append("continues")
    return cols + ["val_recon", "val_kl", "kl_in_bound", "multiplier", "score", "note"]


def _row(r: TrialResult) -> dict:
    return {"trial": r.trial_id, "status": r.status, **r.values, "steps": r.steps,
            "continues": r.continues, "val_recon": r.val_recon, "val_kl": r.val_kl,
            "kl_in_bound": r.kl_in_bound, "multiplier": r.multiplier, "score": r.score,
            "note": r.note}


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_report(results: SearchResults, hypermodel: GecoHyperModel) -> dict:
    """results.csv, results.md, recon_vs_kl.png and best_config.json in `results.out_dir`."""
    out = results.out_dir
    cols = _columns(results)
    paths = {"csv": out / "results.csv", "md": out / "results.md"}
    with open(paths["csv"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        for r in results.trials:
            writer.writerow({k: "" if v is None else v for k, v in _row(r).items()})

    ranked = sorted(results.trials, key=lambda r: (r.score is None, r.score or 0.0, r.trial_id))
    bound = hypermodel.kl_bound
    base = hypermodel.base
    lines = [
        f"# GECO search: {base.data.system}",
        "",
        (f"Objective (minimised): `score` = validation per-pixel MSE (`val_recon`), "
         f"x{bound.penalty:g} when the validation KL per latent location is outside "
         f"[{bound.kl_min:g}, {bound.kl_max:g}] nats. FAILED: diverged (non-finite loss or GECO "
         f"multiplier at its clip bound). Each trial: {base.data.system}, `steps` optimiser steps "
         f"from seed {base.train.seed}."),
        "",
        (f"{len(results.completed)} completed, {len(results.failed)} failed, "
         f"{len(results.trials)} in all. Best first."),
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for r in ranked:
        row = _row(r)
        lines.append("| " + " | ".join(_fmt(row.get(c)).replace("|", "/") for c in cols) + " |")
    if results.best is not None:
        lines += ["", (f"Best: trial {results.best.trial_id}, written to `best_config.json` "
                       f"(`hgn train --config {out / 'best_config.json'} --run-dir RUN`).")]
    paths["md"].write_text("\n".join(lines) + "\n")

    done = [r for r in results.completed if r.val_recon is not None and r.val_kl is not None]
    if done:
        from hgn_tf import plots

        xs = [r.val_kl for r in done]
        ys = [r.val_recon for r in done]
        paths["png"] = plots.scatter_plot(
            out / "recon_vs_kl.png", xs, ys, labels=[r.trial_id for r in done],
            colors=["tab:blue" if r.values["mode"] == "geco" else "tab:orange" for r in done],
            xlabel="validation KL per latent location (nats)",
            ylabel="validation recon (per-pixel MSE)",
            title="completed trials (blue: GECO, orange: fixed beta)",
            logx=all(x > 0 for x in xs), logy=all(y > 0 for y in ys))
    if results.best is not None:
        paths["best_config"] = out / "best_config.json"
        results.best.config.save(paths["best_config"])
    return paths
