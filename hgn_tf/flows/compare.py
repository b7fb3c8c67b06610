"""NHF beside RealNVP on a 2-D target (HGN Fig. 10): train, KDE pictures, an NLL / KL table.

`run_flows(out, densities=("mog",), leapfrog_steps=(2,), coupling_layers=(2,))` trains, for each
target, one NHF per number of leapfrog steps and one RealNVP per number of coupling layers on
the same `train_samples` samples (Adam, `learning_rate` 3e-4 as HGN A.2, `steps` steps of
`batch_size`), then scores each on `test_samples` held-out samples:

    NLL (exact)      RealNVP: -mean log q(x), exact.  The target's own row: -mean log p(x), the
                     entropy of the target, the least any model can reach.
    -ELBO            NHF: -mean ELBO(x) (HGN eq. 6, one momentum sample per x), an upper bound
                     on the NHF's NLL.
    -IWAE_K          NHF: -mean log (1/K) sum_k p(x, p_k) / f_psi(p_k | x), K = `iw_samples`:
                     a tighter upper bound on the NLL in expectation (Burda et al. 2016).
    KL(target||model)  mean over held-out x ~ target of log p(x) - log q(x), with the target's
                     exact log p; for NHF log q is the IWAE_K estimate, so its KL is an
                     over-estimate (by the IWAE gap).

Pictures (HGN A.2's protocol): a Gaussian KDE (isotropic, bandwidth 0.3 in data units; our own,
on a grid, since scipy's `gaussian_kde` scales its bandwidth by the sample covariance) of 1,000
samples from each model and from the target, beside the exact target density.

Writes, per density, OUT/<density>/: `kde.png`, `table.md`, `table.csv`, `metrics.json`, and each
model's `<name>.json` (its config) and `<name>.weights.h5` (`load_flow` reads them back); and
OUT/table.md and table.csv with the rows of every density under OUT (runs for different
densities into the same OUT add up; a density run again replaces its rows).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from hgn_tf import plots
from hgn_tf.errors import ConfigError, RunError, check, positive_int
from hgn_tf.flows import densities as densities_lib
from hgn_tf.flows.nhf import BASES, NeuralHamiltonianFlow, NHFConfig
from hgn_tf.flows.realnvp import RealNVPConfig, RealNVPFlow

__all__ = ["KDE_BANDWIDTH", "gaussian_kde_grid", "load_flow", "run_flows", "save_flow"]

KDE_BANDWIDTH = 0.3
_GRID = 160
_EVAL_BATCH = 1000


def gaussian_kde_grid(samples, extent, n: int = _GRID, bandwidth: float = KDE_BANDWIDTH):
    """An isotropic Gaussian KDE of 2-D `samples` on an n x n grid over extent x extent.

    density[i, j] = mean_k N((x_j, y_i); samples_k, bandwidth^2 I); rows are y (lowest first).
    """
    samples = np.asarray(samples, np.float64)
    g = np.linspace(extent[0], extent[1], n)
    gx = np.exp(-0.5 * ((g[:, None] - samples[None, :, 0]) / bandwidth) ** 2)  # [n, K]
    gy = np.exp(-0.5 * ((g[:, None] - samples[None, :, 1]) / bandwidth) ** 2)
    return gy @ gx.T / (len(samples) * 2 * math.pi * bandwidth ** 2)


def _grid_density(log_prob, extent, n: int = _GRID):
    g = np.linspace(extent[0], extent[1], n, dtype=np.float32)
    xx, yy = np.meshgrid(g, g)
    pts = np.stack([xx.ravel(), yy.ravel()], -1)
    return np.exp(np.asarray(log_prob(pts))).reshape(n, n)


def save_flow(model, stem) -> pathlib.Path:
    """`stem`.json (kind and config) and `stem`.weights.h5 (Keras weights)."""
    stem = pathlib.Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    kind = "nhf" if isinstance(model, NeuralHamiltonianFlow) else "realnvp"
    (stem.parent / f"{stem.name}.json").write_text(json.dumps(
        {"kind": kind, "config": dataclasses.asdict(model.config), "seed": model.seed}, indent=2))
    model.save_weights(stem.parent / f"{stem.name}.weights.h5")
    return stem


def load_flow(stem):
    """The model `save_flow` wrote at `stem`, weights loaded.

    Raises:
        RunError: if `stem`.json or `stem`.weights.h5 is missing.
    """
    stem = pathlib.Path(stem)
    meta_path = stem.parent / f"{stem.name}.json"
    weights = stem.parent / f"{stem.name}.weights.h5"
    for path in (meta_path, weights):
        if not path.exists():
            raise RunError(f"`{path}` does not exist: save the flow with save_flow first.",
                           "stem")
    meta = json.loads(meta_path.read_text())
    cls = NeuralHamiltonianFlow if meta["kind"] == "nhf" else RealNVPFlow
    model = cls(meta["config"], seed=meta["seed"])
    model.build_all()
    model.load_weights(weights)
    return model


def _batched(fn, x):
    return np.concatenate([fn(x[i:i + _EVAL_BATCH]).numpy()
                           for i in range(0, len(x), _EVAL_BATCH)])


def _score(model, x_test, target_log_p, iw_samples, seed):
    """The table's numbers for one trained model on the held-out samples."""
    if isinstance(model, RealNVPFlow):
        log_q = _batched(tf.function(model.log_prob), x_test)
        nll = float(-log_q.mean())
        return {"nll_exact": nll, "neg_elbo": None, "neg_iwae": None,
                "kl": float(target_log_p.mean() - log_q.mean())}
    elbo = tf.function(lambda x: model.elbo(x, seed=[seed, 11]))
    iwae = tf.function(lambda x: model.log_prob_importance_weighted(x, iw_samples,
                                                                    seed=[seed, 12]))
    log_elbo, log_iwae = _batched(elbo, x_test), _batched(iwae, x_test)
    return {"nll_exact": None, "neg_elbo": float(-log_elbo.mean()),
            "neg_iwae": float(-log_iwae.mean()),
            "kl": float(target_log_p.mean() - log_iwae.mean())}


def _train(model, x_train, *, steps, batch_size, learning_rate, seed, verbose):
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    data = (tf.data.Dataset.from_tensor_slices(x_train)
            .shuffle(len(x_train), seed=seed).repeat().batch(batch_size, drop_remainder=True))
    # Ten epochs when they divide the steps: the last one's mean loss is the table's.
    epochs = 10 if steps % 10 == 0 else 1
    start = time.perf_counter()
    history = model.fit(data, steps_per_epoch=steps // epochs, epochs=epochs,
                        verbose=2 if verbose else 0, shuffle=False)
    return time.perf_counter() - start, float(history.history["loss"][-1])


def _fmt(v, digits=3):
    return "-" if v is None else f"{v:.{digits}f}"


def _table_md(rows, iw_samples) -> str:
    lines = [
        f"| density | model | steps | params | train time (s) | NLL exact | -ELBO | "
        f"-IWAE (K={iw_samples}) | KL(target \\|\\| model) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['density']} | {r['model']} | {r['steps'] or '-'} | {r['params'] or '-'} | "
            f"{_fmt(r['train_seconds'], 0)} | {_fmt(r['nll_exact'])} | {_fmt(r['neg_elbo'])} | "
            f"{_fmt(r['neg_iwae'])} | {_fmt(r['kl'])} |")
    lines += [
        "",
        f"Held-out samples, nats per sample. NLL exact: RealNVP's -log q(x); the target's row is "
        f"its own entropy, the least any model can reach. -ELBO and -IWAE (K={iw_samples}): "
        f"upper bounds on an NHF's NLL (HGN eq. 6 with one momentum sample; importance-weighted "
        f"with K). KL(target || model) = mean log p(x) - log q(x) with the target's exact log p; "
        f"for NHF log q is the IWAE estimate, so its KL is an over-estimate.",
    ]
    return "\n".join(lines) + "\n"


_COLUMNS = ("density", "model", "steps", "params", "train_seconds", "last_epoch_loss",
            "nll_exact", "neg_elbo", "neg_iwae", "kl")


def _write_tables(folder: pathlib.Path, rows, iw_samples):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "table.md").write_text(_table_md(rows, iw_samples))
    with open(folder / "table.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k) for k in _COLUMNS})


def _check_counts(field, values, allowed_max=None):
    values = tuple(values)
    for v in values:
        positive_int(field, v)
        if allowed_max is not None:
            check(v <= allowed_max, field, v, f"at most {allowed_max}")
    return values


def run_flows(out, densities=("mog",), leapfrog_steps=(2,), coupling_layers=(2,), *,
              base: str = "normal", dt: float = 1.0, steps: int = 3000, batch_size: int = 256,
              learning_rate: float = 3e-4, train_samples: int = 50_000,
              test_samples: int = 5_000, iw_samples: int = 128, kde_samples: int = 1_000,
              seed: int = 0, verbose: bool = False) -> list[dict]:
    """Train and score NHFs and RealNVPs on 2-D targets (see the module docstring).

    Args:
        out: the output folder.
        densities: target names (`hgn_tf.flows.densities.DENSITY_NAMES`).
        leapfrog_steps: one NHF per value (empty: no NHF).
        coupling_layers: one RealNVP per value (empty: no RealNVP).
        base, dt: the NHFs' base distribution and leapfrog step size (`NHFConfig`).
        steps, batch_size, learning_rate: Adam's training of every model.
        train_samples, test_samples: samples of the target to train on and to score on.
        iw_samples: K of the NHF's importance-weighted estimate.
        kde_samples: samples per KDE picture (HGN: 1,000).
        seed: seeds the samples, the weights and the momenta.

    Returns:
        The table's rows (dicts), the target's row first for each density.

    Raises:
        ConfigError: a bad argument, named (`field` is the argument's name).
    """
    densities = tuple(densities)
    check(len(densities) > 0, "densities", densities, "at least one density")
    targets = [densities_lib.get(name) for name in densities]
    leapfrog_steps = _check_counts("leapfrog_steps", leapfrog_steps)
    coupling_layers = _check_counts("coupling_layers", coupling_layers)
    if not leapfrog_steps and not coupling_layers:
        raise ConfigError("`leapfrog_steps` and `coupling_layers` are both empty: no model to "
                          "train.", "leapfrog_steps")
    check(base in BASES, "base", base, f"one of {BASES}")
    for field, value in (("steps", steps), ("batch_size", batch_size),
                         ("train_samples", train_samples), ("test_samples", test_samples),
                         ("iw_samples", iw_samples), ("kde_samples", kde_samples)):
        positive_int(field, value)
    check(isinstance(learning_rate, (int, float)) and learning_rate > 0, "learning_rate",
          learning_rate, "a positive number")
    check(batch_size <= train_samples, "batch_size", batch_size,
          f"at most train_samples ({train_samples})")
    check(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0, "seed", seed,
          "a non-negative integer")
    nhf_configs = {f"nhf-{n}lf": NHFConfig(leapfrog_steps=n, base=base, dt=dt)
                   for n in leapfrog_steps}
    rnvp_configs = {f"realnvp-{n}": RealNVPConfig(coupling_layers=n) for n in coupling_layers}

    out = pathlib.Path(out)
    all_rows = []
    for target in targets:
        folder = out / target.name
        x_train = target.sample(train_samples, [seed, 1]).numpy()
        x_test = target.sample(test_samples, [seed, 2]).numpy()
        target_log_p = target.log_prob(x_test).numpy()
        rows = [{"density": target.name, "model": "target (exact)", "steps": None,
                 "params": None, "train_seconds": None, "last_epoch_loss": None,
                 "nll_exact": float(-target_log_p.mean()), "neg_elbo": None, "neg_iwae": None,
                 "kl": 0.0}]
        extent = target.extent
        panels = {"target (exact)": _grid_density(target.log_prob, extent),
                  "target (KDE)": gaussian_kde_grid(target.sample(kde_samples, [seed, 3]),
                                                    extent)}
        models = [(name, NeuralHamiltonianFlow, cfg) for name, cfg in nhf_configs.items()]
        models += [(name, RealNVPFlow, cfg) for name, cfg in rnvp_configs.items()]
        for name, cls, cfg in models:
            keras.utils.set_random_seed(seed)
            model = cls(cfg, seed=seed)
            model.build_all()
            seconds, final = _train(model, x_train, steps=steps, batch_size=batch_size,
                                    learning_rate=learning_rate, seed=seed, verbose=verbose)
            save_flow(model, folder / name)
            row = {"density": target.name, "model": name, "steps": steps,
                   "params": int(model.count_params()), "train_seconds": seconds,
                   "last_epoch_loss": final}
            row.update(_score(model, x_test, target_log_p, iw_samples, seed))
            rows.append(row)
            panels[name] = gaussian_kde_grid(model.sample(kde_samples, seed=[seed, 4]).numpy(),
                                             extent)
            if verbose:
                print(f"{target.name} {name}: {json.dumps(row)}", flush=True)
        plots.density_panels(folder / "kde.png", panels, extent,
                             title=f"{target.name}: KDE of {kde_samples} samples, "
                                   f"bandwidth {KDE_BANDWIDTH}")
        _write_tables(folder, rows, iw_samples)
        (folder / "metrics.json").write_text(json.dumps(rows, indent=2))
        all_rows += rows
    # OUT/table.md: every density under OUT, this run's and earlier runs' (one per density).
    on_disk = [row for name in densities_lib.DENSITY_NAMES
               if (out / name / "metrics.json").exists()
               for row in json.loads((out / name / "metrics.json").read_text())]
    _write_tables(out, on_disk, iw_samples)
    return all_rows
