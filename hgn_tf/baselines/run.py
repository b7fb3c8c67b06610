"""`hgn baselines hnn`: train the HNN and the baseline MLP on a task, evaluate, write the table.

For each task: the `hnn_tasks/<task>` TFDS dataset is built (or read) in `data_dir`; the training
points are every (x, dx/dt) of the train split (trajectories flattened), the test split is scored
during training; both models are trained with the task's official protocol (Adam 1e-3, `steps`
steps of `batch_size` points, weight decay); both learned fields are rolled out from 15 initial
states (the task's `eval_sampler`: the official notebooks' own states for spring, pendulum,
two_body and three_body, the training sampler elsewhere; `eval_sampler` of `run_hnn` overrides
it; `hgn_tf.baselines.evaluate`: scipy's `solve_ivp` per state by default, DOP853 at
rtol = atol = 1e-12) and scored with the true energy. Writes

    OUT/<task>/metrics.json        scores, training curves, settings, wall time
    OUT/<task>/phase.png           phase-space trajectories: truth, baseline, HNN
    OUT/<task>/energy.png          true energy along the rollouts over time
    OUT/<task>/{hnn,baseline}.json, .weights.h5   the trained models (`hnn.load`)
    OUT/table.md                   every task under OUT, beside the official README's numbers
A killed run resumes: a model whose training finished (`<kind>_trained.json`, written after its
weights, with the settings it was trained with) is loaded instead of trained again.
"""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np

from hgn_tf import plots
from hgn_tf.baselines import hnn
from hgn_tf.baselines.evaluate import IVP_METHODS, N_STATES, SOLVERS, evaluate_fields
from hgn_tf.baselines.tasks import EVAL_SAMPLERS, TASK_NAMES, Task, get_task
from hgn_tf.errors import check, folder, positive_int
from hgn_tf.files import atomic_write_text

__all__ = ["OFFICIAL", "SEED002", "load_task_data", "mark_trained", "run_hnn", "trained_before",
           "write_table"]

# Energy MSE, baseline -> HNN: the official README (greydanus/hamiltonian-nn) and the TF
# reproduction (seed 002, sections 3-4). The damped spring has no published figure.
OFFICIAL = {"spring": (1.71e-1, 3.84e-4), "pendulum": (4.15e-2, 2.49e-2),
            "two_body": (6.33e-2, 3.88e-5), "three_body": (1.09e2, 4.19e-2)}
SEED002 = {"spring_unit": (3.8732e-2, 9.3688e-5), "pendulum": (2.9537e-1, 3.6364e-2),
           "two_body": (1.3686e-1, 2.8087e-5), "three_body": (5.4413e7, 1.0903e2)}


def load_task_data(task_name: str, data_dir=None) -> dict:
    """{"train": (x, dxdt), "test": (x, dxdt)}: points [P, 2n] from `tfds.load`."""
    import tensorflow_datasets as tfds

    import hgn_tf.datasets  # noqa: F401  (registers hnn_tasks)

    builder = tfds.builder(f"hnn_tasks/{task_name}", data_dir=data_dir)
    builder.download_and_prepare()
    out = {}
    for split in ("train", "test"):
        arrays = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        d = arrays["x"].shape[-1]
        out[split] = (arrays["x"].reshape(-1, d), arrays["dxdt"].reshape(-1, d))
    return out


def _pictures(task: Task, rollouts: dict, out: pathlib.Path) -> None:
    colours = {"truth": "black", "baseline": "tab:red", "hnn": "tab:blue"}
    names = ("truth", "baseline", "hnn")
    series, styles = {}, {}
    n = task.dim
    for name in names:
        x = rollouts[name]
        if n == 1:  # three initial states in the (q, p) plane
            for i in range(3):
                label = f"{name} #{i}"
                series[label] = (x[i, :, 0], x[i, :, 1])
                styles[label] = {"color": colours[name], "linewidth": 1,
                                 "linestyle": "-" if name == "truth" else "--"}
        else:  # the bodies' paths of the first initial state
            for b in range(n // 2):
                label = f"{name} body {b}"
                series[label] = (x[0, :, 2 * b], x[0, :, 2 * b + 1])
                styles[label] = {"color": colours[name], "linewidth": 1,
                                 "linestyle": "-" if name == "truth" else "--"}
    xlabel, ylabel = ("q", "p") if n == 1 else ("x", "y")
    plots.line_plot(out / "phase.png", series, xlabel=xlabel, ylabel=ylabel, styles=styles,
                    title=f"{task.name}: trajectories (solid: truth, dashed: models)")
    t = rollouts["t"]
    energy = {name: (t, task.energy(np.nan_to_num(rollouts[name][0]))) for name in names}
    plots.line_plot(out / "energy.png", energy, xlabel="t", ylabel="true energy",
                    title=f"{task.name}: energy along the first rollout",
                    styles={k: {"color": colours[k]} for k in names})


def _run_task(task: Task, out: pathlib.Path, data_dir, seed: int, verbose: bool,
              solver: str = "solve_ivp", method: str = "DOP853") -> dict:
    data = load_task_data(task.name, data_dir)
    record = {"task": task.name, "system": task.system, "overrides": dict(task.overrides),
              "steps": task.steps, "batch_size": task.batch_size,
              "weight_decay": task.weight_decay, "seed": seed,
              "train_points": len(data["train"][0]), "n_states": N_STATES,
              "solver": solver, "ivp_method": method if solver == "solve_ivp" else "DOP853",
              "eval_sampler": task.eval_sampler}
    fields = {}
    settings = {k: record[k] for k in ("task", "steps", "batch_size", "weight_decay", "seed",
                                       "train_points")}
    for kind in ("baseline", "hnn"):
        marker = out / f"{kind}_trained.json"
        saved = trained_before(marker, settings)
        if saved is not None:
            # Trained by an earlier run with these settings (the marker is written after the
            # weights): a killed run resumes from the model it had not finished.
            model = hnn.load(out, kind)
            record[f"{kind}_train_s"], curves = saved["train_s"], saved["curves"]
            done = "loaded (trained before)"
        else:
            start = time.perf_counter()
            model = hnn.build(hnn.HNNConfig(kind=kind, state_dim=2 * task.dim,
                                            weight_decay=task.weight_decay, seed=seed))
            curves = hnn.fit(model, *data["train"], steps=task.steps,
                             batch_size=task.batch_size, test=data["test"], seed=seed)
            train_s = time.perf_counter() - start
            hnn.save(model, out)
            mark_trained(marker, settings, {"train_s": train_s, "curves": curves})
            record[f"{kind}_train_s"] = train_s
            done = f"{task.steps} steps in {train_s:.0f} s"
        record[f"{kind}_curves"] = curves
        fields[kind] = hnn.field_function(model)
        if verbose:
            print(f"{task.name} {kind}: {done}, test field MSE {curves['test_loss'][-1]:.3e}",
                  flush=True)
    start = time.perf_counter()
    scores, rollouts = evaluate_fields(task, fields, seed=seed, solver=solver, method=method)
    record["eval_s"] = time.perf_counter() - start
    record["scores"] = scores
    _pictures(task, rollouts, out)
    atomic_write_text(out / "metrics.json", json.dumps(record, indent=1))
    return record


def trained_before(marker: pathlib.Path, settings: dict) -> dict | None:
    """The record `mark_trained` left at `marker` if it was trained with `settings`, else None."""
    saved = json.loads(marker.read_text()) if marker.is_file() else None
    return saved if saved is not None and saved["settings"] == settings else None


def mark_trained(marker: pathlib.Path, settings: dict, record: dict) -> None:
    """Write {"settings": settings, **record} at `marker`, whole or not at all; call it after the
    model's weights are saved, so a marker always means a finished model."""
    atomic_write_text(marker, json.dumps({"settings": settings, **record}, indent=1))


def _fmt(value: float, se: float | None = None) -> str:
    if not np.isfinite(value):
        return "diverged"
    return f"{value:.2e}" if se is None else f"{value:.2e} ± {se:.1e}"


def energy_ratio(baseline: dict, hnn: dict) -> tuple[float, float]:
    """(baseline / HNN energy MSE, its error bar): the two error bars (the notebooks' std of 5
    group means / sqrt 5) propagated to first order, se_r / r = sqrt((se_b / b)^2 +
    (se_h / h)^2); the factor the official README reports is compared within it."""
    b, h = baseline["energy_mse"], hnn["energy_mse"]
    if h <= 0:
        return np.inf, np.nan
    r = b / h
    return r, r * float(np.hypot(baseline["energy_mse_se"] / b, hnn["energy_mse_se"] / h))


def write_table(out) -> pathlib.Path:
    """OUT/table.md from every OUT/<task>/metrics.json, beside the published figures."""
    out = pathlib.Path(out)
    rows = ["| task | evaluation states | energy MSE baseline | energy MSE HNN | baseline / HNN | "
            "official baseline -> HNN (ratio) | seed 002 baseline -> HNN | state MSE baseline | "
            "state MSE HNN | steps | train s (baseline, HNN) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name in TASK_NAMES:
        path = out / name / "metrics.json"
        if not path.is_file():
            continue
        r = json.loads(path.read_text())
        b, h = r["scores"]["baseline"], r["scores"]["hnn"]
        ratio, ratio_se = energy_ratio(b, h)
        off = OFFICIAL.get(name)
        official = f"{off[0]:.2e} -> {off[1]:.2e} ({off[0] / off[1]:.0f}x)" if off else "-"
        s2 = SEED002.get(name)
        seed002 = f"{s2[0]:.2e} -> {s2[1]:.2e}" if s2 else "-"
        rows.append(
            f"| {name} | {r.get('eval_sampler', 'task')} | "
            f"{_fmt(b['energy_mse'], b['energy_mse_se'])} | "
            f"{_fmt(h['energy_mse'], h['energy_mse_se'])} | {ratio:.3g}x ± {ratio_se:.3g} | "
            f"{official} | "
            f"{seed002} | {_fmt(b['state_mse'])} | {_fmt(h['state_mse'])} | {r['steps']} | "
            f"{r['baseline_train_s']:.0f}, {r['hnn_train_s']:.0f} |")
    path = out / "table.md"
    atomic_write_text(path, "\n".join(rows) + "\n")
    return path


def run_hnn(out, tasks=("spring",), *, data_dir=None, steps: int | None = None,
            seed: int = 0, solver: str = "solve_ivp", method: str = "DOP853",
            eval_sampler: str | None = None, verbose: bool = False) -> pathlib.Path:
    """Train, evaluate and tabulate each task (see the module docstring); returns table.md.

    Args:
      tasks: names from `TASK_NAMES`.
      steps: replaces every task's official number of steps (None: keep it).
      solver, method: the evaluation's ODE solver (`hgn_tf.baselines.evaluate.rollout_field`).
      eval_sampler: replaces every task's `eval_sampler` ("task" or "notebook"; None: keep it).
        The trained models do not depend on it, so a second run with another value only
        evaluates again.
    """
    check(solver in SOLVERS, "solver", solver, f"one of {SOLVERS}")
    check(eval_sampler is None or eval_sampler in EVAL_SAMPLERS, "eval_sampler", eval_sampler,
          f"None or one of {EVAL_SAMPLERS}")
    check(method in IVP_METHODS, "method", method, f"one of {IVP_METHODS}")
    if steps is not None:
        positive_int("steps", steps)
    changes = {k: v for k, v in (("steps", steps), ("eval_sampler", eval_sampler)) if v is not None}
    chosen = [get_task(name, **changes) for name in tasks]  # every name checked before any work
    out = folder("out", out)
    for task in chosen:
        name = task.name
        task_out = out / name
        task_out.mkdir(parents=True, exist_ok=True)
        _run_task(task, task_out, data_dir, seed, verbose, solver, method)
    return write_table(out)
