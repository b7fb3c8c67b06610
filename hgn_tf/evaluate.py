"""Evaluation of a trained run: Table-1 / Table-2 metrics, baselines and pictures.

For each split (train, test) the model reads its k conditioning frames (`input_frames` in
inference mode, its training sequence length in autoencode mode), starts from the posterior mean
and rolls out `horizon` frames (default: every stored frame, 30) at the training dt, whatever
length it was trained on. The figures (pure functions of `hgn_tf.metrics`) are reported over the
whole unroll and separately over the frames the encoder read (0..k-1) and the frames after them
(k..horizon-1), each beside the two baselines:

    pixel_mse             mean over sequences of the per-sequence pixel MSE (HGN Table 1; printed
                          x1e4 as in the paper), with `pixel_mse_std`
    per_step_mse          [horizon]: the MSE of frame t, averaged over sequences (a PNG curve)
    hamiltonian_variance  mean over sequences of Var_t H_gamma(q_t, p_t) (HGN Table 2; x1e4)
    vpt, vpt_median       valid prediction time in frames (`hgn_tf.metrics`): mean and median
                          over sequences (the mean hides a share of sequences at 0)
    baseline_mean_frame_mse    predicting the mean training frame everywhere
    baseline_repeat_last_mse   repeating the last frame the encoder read (frame k-1)
    read / after          the same MSE figures over frames 0..k-1 and k..horizon-1 ("after" is
                          absent when the horizon ends at k)

Physics read back from the pixels (`physics` of each split, `hgn_tf.plausibility`): the true
system's positions, momenta and energy read off the frames, scored (found_fraction,
energy_rel_var, energy_rel_drift, position_error_px against the stored clean state,
constraint_residual) for the model's rollouts (`model`) beside the same scores of the stored
frames (`truth`: rendered from noisy states, the floor with the dataset's noise) and of the clean
states rendered (`clean`: what a perfect model of the clean dynamics draws); and for samples from
the prior (`samples`, a stochastic model only; `prior="learned"` draws them from the run's
learned prior over the initial state, `hgn fit-prior` / `hgn_tf.prior`, and `samples["prior"]`
says which).

With `prediction_floor=True` (`hgn evaluate --prediction-floor`), a model that reads fewer frames
than it is scored on is also compared with the best any model reading those frames can do: the
true dynamics' expected frames given the noisy positions read (`physics.inference`), scored the
same way (`prediction_floor` of each split; 0 on the frames read, which it copies), and drawn in
`rollout_vs_truth.png` under the model's rows.

Pictures (in `<run>/eval/`): truth vs rollout, a backward rollout (roll forward to the last
frame, then integrate with -dt back to the start, against the reversed truth), double and half
speed rollouts, samples from the prior (PNG grids, GIFs and MP4s; `samples_learned*` for the
learned prior), and the per-step MSE curve; the tracks and the energy read back from the rollouts
and samples (`rollout_physics_*.png`, `samples_physics_*.png` / `samples_learned_physics_*.png`).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import pathlib

import numpy as np
import tensorflow as tf

from hgn_tf import data as data_lib
from hgn_tf import metrics, plausibility, plots
from hgn_tf import physics as physics_lib
from hgn_tf.errors import ConfigError, check, non_negative_int, positive_int
from hgn_tf.physics import STORED_FRAMES, inference
from hgn_tf.prior import PRIOR_CONFIG_FILE, SAMPLE_PRIORS, load_prior
from hgn_tf.train import atomic_write_text, load_run

__all__ = ["PREDICTION_FLOOR_SAMPLES", "evaluate", "format_table", "physics_reports",
           "prediction_floor_frames", "rollout_report"]

# Importance draws per sequence for the prediction floor (Monte Carlo error ~0.01x of the
# mean-frame baseline on pendulum; bench/prediction_floor.py).
PREDICTION_FLOOR_SAMPLES = 64


# The last floors computed in this process (a split's train and test): the floor is a pure
# function of its arguments, and `hgn experiment table1` needs the same ones for each pair's
# evaluation and for the system's prediction_floor.json.
_FLOOR_CACHE: collections.OrderedDict = collections.OrderedDict()
_FLOOR_CACHE_SIZE = 2


def prediction_floor_frames(system_name: str, q_noisy, times, frames_read: int, *,
                            resolution: int, n_samples: int = PREDICTION_FLOOR_SAMPLES,
                            seed: int = 0) -> dict:
    """The prediction floor's frames for sequences whose stored noisy positions are `q_noisy`
    [N, T, dim] at `times` [T] (`physics.inference.posterior_frames`: the frames read as read,
    then the true dynamics' expected frames). Returns that function's dict, its arrays
    read-only: the last two results are kept and returned again for equal arguments (the
    arrays compared by value), so callers that need the same floor compute it once."""
    system = physics_lib.get(system_name)
    if not inference.has_prior(system):
        raise ConfigError(f"`prediction_floor`: system {system_name!r} does not say how its "
                          "initial states are drawn (`PhysicalSystem.initial_parametrisation`), "
                          "which the floor needs.", "prediction_floor")
    q_noisy, times = np.asarray(q_noisy), np.asarray(times)
    key = (system_name, frames_read, resolution, n_samples, seed,
           *(a.dtype.str + str(a.shape) + hashlib.sha256(np.ascontiguousarray(a)).hexdigest()
             for a in (q_noisy, times)))
    if key in _FLOOR_CACHE:
        _FLOOR_CACHE.move_to_end(key)
        return _FLOOR_CACHE[key]
    out = inference.posterior_frames(system, q_noisy, times, frames_read=frames_read,
                                     n_samples=n_samples, seed=seed, resolution=resolution)
    for value in out.values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    _FLOOR_CACHE[key] = out
    while len(_FLOOR_CACHE) > _FLOOR_CACHE_SIZE:
        _FLOOR_CACHE.popitem(last=False)
    return out


def rollout_report(pred: np.ndarray, truth: np.ndarray, energy: np.ndarray | None, *,
                   mean_frame: np.ndarray, frames_read: int) -> dict:
    """Every figure of one split from predicted and true frames [N, T, H, W, 3] in [0, 1]."""
    anchor = min(frames_read, truth.shape[1]) - 1
    errors = metrics.frame_errors(pred, truth, mean_frame=mean_frame, anchor=anchor)
    report = metrics.window_report(errors)
    vpt = metrics.valid_prediction_time(pred, truth, errors=errors["model"])
    report.update(
        per_step_mse=[float(x) for x in errors["model"].mean(axis=0)],
        vpt=float(vpt.mean()),
        vpt_median=float(np.median(vpt)),
        n_sequences=int(len(truth)),
        read=metrics.window_report(errors, slice(0, frames_read)),
    )
    if frames_read < truth.shape[1]:
        report["after"] = metrics.window_report(errors, slice(frames_read, None))
    if energy is not None:
        report["hamiltonian_variance"] = float(metrics.energy_variance(energy).mean())
    return report


def physics_reports(system, pred: np.ndarray, truth: np.ndarray, q: np.ndarray, *,
                    frame_dt: float) -> dict:
    """The physics read back from rollouts `pred` beside the floors, each a
    `plausibility.physics_report`: {"model", "truth" (the stored frames), "clean" (the clean
    states `q` [N, T, dim] rendered)}."""
    def report(frames):
        return plausibility.physics_report(frames, system, frame_dt, true_q=q)

    clean = physics_lib.render_states(system, q, truth.shape[-2])
    return {"model": report(pred), "truth": report(truth), "clean": report(clean)}


def _sample_physics(model, cfg, system, n: int, n_steps: int, batch_size: int,
                    frame_dt: float, prior=None) -> dict:
    frames = [model.sample(min(batch_size, n - i), n_steps,
                           seed=tf.constant([cfg.train.seed, 2 + i]), prior=prior)["frames"].numpy()
              for i in range(0, n, batch_size)]
    return plausibility.physics_report(np.concatenate(frames), system, frame_dt)


def _predict(model, frames: np.ndarray, batch_size: int, n_steps: int, dt: float,
             draws: int = 0, seed: int = 0):
    """Rollouts of `frames` from the posterior mean, or with `draws` > 0 the predictive mean of
    that many posterior draws (seeded by `seed` and the batch's index); the learned energy is
    the posterior-mean rollout's either way."""
    preds, energies = [], []
    fn = tf.function(lambda x, s: model.rollout(x, n_steps, dt, seed=s, draws=draws),
                     reduce_retracing=True)
    for i in range(0, len(frames), batch_size):
        out = fn(tf.constant(frames[i : i + batch_size]), tf.constant([seed, i]))
        preds.append(out["frames"].numpy())
        if "energy" in out:
            energies.append(out["energy"].numpy())
    return np.concatenate(preds), (np.concatenate(energies) if energies else None)


def evaluate(
    run_dir,
    *,
    horizon: int | None = None,
    max_sequences: int = 512,
    batch_size: int = 32,
    pictures: bool = True,
    verbose: bool = True,
    prior: str = "standard",
    prediction_floor: bool = False,
    draws: int | None = None,
) -> dict:
    """Evaluate the run in `run_dir`; writes `<run_dir>/eval/metrics.json` and pictures.

    Args:
      horizon: frames to roll out and score (1..30; None: all 30 stored frames).
      max_sequences: sequences of each split to score.
      batch_size: sequences per rollout call.
      prior: what samples start from: "standard" (z ~ N(0, I) through f_psi) or "learned" (the
        run's learned prior over the initial state: `hgn fit-prior`).
      prediction_floor: also score the true dynamics' best prediction from the frames read (the
        module doc); needs a horizon longer than the frames read.
      draws: predict the mean of the decoded rollouts of this many posterior draws (the
        predictive mean; a stochastic model only); 0: decode the posterior mean's rollout. None:
        the model's `predictive_draws` when it was trained on a predictive mean (K > 1), else 0.
    """
    max_sequences = positive_int("max_sequences", max_sequences)
    batch_size = positive_int("batch_size", batch_size)
    horizon = STORED_FRAMES if horizon is None else positive_int("horizon", horizon)
    check(horizon <= STORED_FRAMES, "horizon", horizon,
          f"at most {STORED_FRAMES} (the stored sequence length)")
    check(prior in SAMPLE_PRIORS, "prior", prior, f"one of {SAMPLE_PRIORS}")
    run_dir = pathlib.Path(run_dir)
    cfg, model = load_run(run_dir)
    learned = None
    if prior == "learned":
        learned = load_prior(run_dir)
        if learned is None:
            raise ConfigError(f"`prior` 'learned': {str(run_dir)!r} has no {PRIOR_CONFIG_FILE};"
                              f" fit one first (`hgn fit-prior --run-dir {run_dir}`).", "prior")
    mc = cfg.model
    if draws is None:
        draws = mc.predictive_draws if mc.predictive_draws > 1 else 0
    else:
        draws = non_negative_int("draws", draws)
        check(draws == 0 or not mc.deterministic, "draws", draws,
              "0 or None for a deterministic model (it has no posterior to draw from)")
    out_dir = run_dir / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    k = model.conditioning_frame_count
    check(horizon >= k, "horizon", horizon, f"at least the {k} frames the encoder reads")
    if prediction_floor:
        check(horizon > k, "prediction_floor", prediction_floor,
              f"False for a horizon ({horizon}) that does not go past the {k} frames read")
    data_cfg = dataclasses.replace(cfg.data, n_frames=horizon)
    train_frames = data_lib.load_arrays(data_cfg, "train", limit=max_sequences)["frames"]
    mean_frame = train_frames.mean(axis=(0, 1))
    system = physics_lib.get(cfg.data.system)
    frame_dt = float(data_lib.build(data_cfg).builder_config.dt)  # time between stored frames
    metrics_out = {
        "system": cfg.data.system,
        "horizon": horizon,
        "frames_read": k,
        "trained_frames": cfg.data.n_frames,
        "dt": mc.dt,
        "integrator": mc.integrator,
        "input_mode": mc.input_mode,
        "posterior_draws": draws,  # 0: the posterior mean decoded
    }
    for split in ("train", "test"):
        truth = (
            train_frames
            if split == "train"
            else data_lib.load_arrays(data_cfg, "test", limit=max_sequences)["frames"]
        )
        pred, energy = _predict(model, truth, batch_size, horizon, mc.dt, draws,
                                seed=cfg.train.seed)
        metrics_out[split] = rollout_report(pred, truth, energy, mean_frame=mean_frame,
                                            frames_read=k)
        states = data_lib.load_arrays(
            data_cfg, split, keys=("q", "q_noisy", "t") if prediction_floor else ("q",),
            limit=max_sequences)
        q = states["q"]
        metrics_out[split]["physics"] = physics_reports(system, pred, truth, q, frame_dt=frame_dt)
        if split == "test" and not mc.deterministic:
            metrics_out["samples"] = {"prior": prior, "physics": _sample_physics(
                model, cfg, system, min(max_sequences, 64), horizon, batch_size, frame_dt,
                learned)}
        if prediction_floor:
            floor = prediction_floor_frames(cfg.data.system, states["q_noisy"], states["t"][0],
                                            k, resolution=data_cfg.resolution)
            metrics_out[split]["prediction_floor"] = rollout_report(
                floor["frames"], truth, None, mean_frame=mean_frame, frames_read=k)
        if split == "test":
            test_truth, test_pred = truth, pred
            test_floor = floor["frames"] if prediction_floor else None
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics_out, indent=2))
    plots.line_plot(
        out_dir / "per_step_mse.png",
        {s: (np.arange(horizon), metrics_out[s]["per_step_mse"]) for s in ("train", "test")},
        xlabel="frame",
        ylabel="pixel MSE",
        title=f"{cfg.data.system}: per-step MSE (encoder reads frames 0-{k - 1})",
        vline=k - 0.5,
    )
    if pictures:
        _pictures(model, cfg, test_truth, test_pred, out_dir, frames_read=k,
                  physics=(system, frame_dt), prior=learned, floor=test_floor)
    if verbose:
        print(format_table(metrics_out))
    return metrics_out


def format_table(metrics_out: dict) -> str:
    """The figures of `evaluate` as a text table (x1e4), one row per split and window."""
    k, horizon = metrics_out["frames_read"], metrics_out["horizon"]
    rows = [f"frames 0-{k - 1} read by the encoder, {horizon} scored",
            "split  frames  pixel_mse(x1e4)    /mean-frame  mean-frame  repeat-last  "
            "H_var(x1e4)  vpt mean/median"]
    for s in ("train", "test"):
        m = metrics_out[s]
        hv = m.get("hamiltonian_variance")
        windows = [("all", m), ("read", m["read"])] + (
            [("after", m["after"])] if "after" in m else [])
        for name, w in windows:
            extra = (f"  {(hv * 1e4 if hv is not None else float('nan')):11.3f}  "
                     f"{m['vpt']:4.1f}/{m['vpt_median']:4.1f}") if name == "all" else ""
            rows.append(
                f"{s:5}  {name:6}  {w['pixel_mse'] * 1e4:7.2f} +- {w['pixel_mse_std'] * 1e4:6.2f}"
                f"  {w['ratio_to_mean_frame']:11.2f}  {w['baseline_mean_frame_mse'] * 1e4:10.2f}"
                f"  {w['baseline_repeat_last_mse'] * 1e4:11.2f}{extra}"
            )
        floor = m.get("prediction_floor")
        if floor is not None:  # the best any model reading frames 0..k-1 can do after them
            w = floor["after"]
            rows.append(
                f"{s:5}  floor   {w['pixel_mse'] * 1e4:7.2f} +- {w['pixel_mse_std'] * 1e4:6.2f}"
                f"  {w['ratio_to_mean_frame']:11.2f}  (after; the true dynamics' expected frames)"
                f"  {floor['vpt']:4.1f}/{floor['vpt_median']:4.1f}")
    rows += _format_physics(metrics_out)
    return "\n".join(rows)


def _format_physics(metrics_out: dict) -> list[str]:
    """The physics read back (`physics_reports`) as text rows, if the figures hold it."""
    entries = [(s, name, metrics_out[s]["physics"][name]) for s in ("train", "test")
               if "physics" in metrics_out.get(s, {}) for name in ("model", "truth", "clean")]
    if "samples" in metrics_out:
        samples = metrics_out["samples"]
        name = "learned" if samples.get("prior") == "learned" else "samples"
        entries.append(("prior", name, samples["physics"]))
    if not entries:
        return []

    def number(value, fmt):
        return format(value, fmt) if value is not None else "-".rjust(int(fmt.split(".")[0]))

    rows = ["physics read back from the frames (E: the true energy; medians over sequences)",
            "split  frames   found  E_rel_var  E_rel_drift  pos_err(px)  rod_resid  plausible"]
    for split, name, r in entries:
        rows.append(
            f"{split:5}  {name:7}  {r['found_fraction']:5.3f}  "
            f"{number(r.get('energy_rel_var_median'), '9.2e')}  "
            f"{number(r.get('energy_rel_drift_median'), '11.4f')}  "
            f"{number(r.get('position_error_px'), '11.3f')}  "
            f"{number(r.get('constraint_residual'), '9.4f')}  {r['plausible_fraction']:9.3f}")
    return rows


def _pictures(model, cfg, truth, pred, out_dir: pathlib.Path, *, frames_read: int, n: int = 4,
              physics=None, prior=None, floor=None):
    mc, t = cfg.model, truth.shape[1]
    x = tf.constant(truth[:n])
    rows = [truth[:n], pred[:n]] + ([] if floor is None else [floor[:n]])
    names = ["truth", "model"] + ([] if floor is None else ["floor"])
    plots.grid_png(
        rows, out_dir / "rollout_vs_truth.png",
        labels=[f"{name} {i}" for name in names for i in range(n)],
        mark_after=frames_read - 1,
    )
    plots.animations(np.concatenate([truth[:n], pred[:n]], axis=0), out_dir / "rollout_vs_truth")
    # Backward: forward to the last frame, then -dt back to frame 0, against the reversed truth.
    q0, p0, _ = model.encode(model.conditioning_frames(x))
    qs, ps = model.integrate(q0, p0, t, mc.dt)
    qb, _ = model.integrate(qs[:, -1], ps[:, -1], t, -mc.dt)
    back = model.decode(qb).numpy()
    plots.grid_png(
        [truth[:n, ::-1], back],
        out_dir / "backward.png",
        labels=[f"truth rev {i}" for i in range(n)] + [f"back {i}" for i in range(n)],
    )
    plots.animations(back, out_dir / "backward")
    fast = model.rollout(x, t, 2 * mc.dt)["frames"].numpy()
    slow = model.rollout(x, t, 0.5 * mc.dt)["frames"].numpy()
    plots.grid_png(
        [pred[:n], fast, slow],
        out_dir / "speeds.png",
        labels=[f"1x {i}" for i in range(n)]
        + [f"2x {i}" for i in range(n)]
        + [f"0.5x {i}" for i in range(n)],
    )
    plots.animations(np.concatenate([pred[:n], fast, slow]), out_dir / "speeds")
    if not mc.deterministic:
        stem = "samples" if prior is None else "samples_learned"
        samples = model.sample(8, t, seed=tf.constant([cfg.train.seed, 1]),
                               prior=prior)["frames"].numpy()
        plots.grid_png(samples, out_dir / f"{stem}.png")
        plots.animations(samples, out_dir / stem)
    if physics is not None:  # (system, frame_dt): the tracks and energy read back, drawn
        plausibility.write_pictures(pred[:n], *physics, out_dir, "rollout_physics")
        if not mc.deterministic:
            plausibility.write_pictures(samples[:n], *physics, out_dir, f"{stem}_physics",
                                        reference_frames=truth[:n])
