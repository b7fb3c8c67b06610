"""Export a trained HGN as a SavedModel in TensorFlow Serving's layout.

    out_dir/
      1/                     a version: the integer names are what TF Serving scans for
        saved_model.pb       the graphs of the signatures below
        variables/           the weights
        assets/hgn_export.json   what a server needs to know without importing hgn_tf
      2/ ...

Signatures (inputs -> outputs; B = batch, H = W = the model's resolution, [S, S, L] = the
state's shape (`[L]` for a vector latent), k = the conditioning frames the encoder reads):

    rollout      frames uint8 [B, >=k, H, W, 3], n_steps int32 [], dt float32 []
                 -> frames float32 [B, n_steps, H, W, 3] in [0, 1], q, p [B, n_steps, S, S, L],
                    energy [B, n_steps]
    rollout_frames  the same inputs -> frames only (the same frames as `rollout`'s, without
                 the learned energy along the path, 7% of a batch-64 paper-preset call, or the
                 states: for clients that only show the video, like `hgn rollout`)
    sample       n int32 [], n_steps int32 [], dt float32 [], seed int32 []
                 -> frames [n, n_steps, H, W, 3], energy [n, n_steps]
    encode       frames uint8 [B, >=k, H, W, 3] -> q, p [B, S, S, L]   (the posterior mean)
    decode       q float32 [B, S, S, L] -> frames float32 [B, H, W, 3]
    hamiltonian  q, p float32 [B, S, S, L] -> energy float32 [B]

`rollout` starts from the posterior mean (no sampling) and returns n_steps frames: the first is the
decoded initial state, then n_steps - 1 integrator steps of size dt follow (negative dt runs
backward in time, 2 dt twice as fast). A model trained on the predictive mean of K posterior draws
(`ModelConfig.predictive_draws` > 1) returns that mean as its frames, K draws with the fixed
seed `PREDICTIVE_SEED` (hgn_export.json's `rollout_draws`: K, or 0), and q, p and energy along
the posterior mean's rollout. Only the first k frames are read (k = `input_frames` in
inference mode, the training sequence length in autoencode mode); more are allowed, fewer are an
error. `sample` draws its initial states with the stateless seed [seed, 0] (the same seed gives the
same frames): from the run's learned prior over the initial state when it has one
(`hgn fit-prior`, `hgn_tf.prior`; its weights are part of the SavedModel), else z ~ N(0, I)
through f_psi; hgn_export.json's `sample_prior` says which ("learned" or "standard").
Deterministic models (`deterministic=True`) have no `sample` signature;
`dynamics="direct"` models have no Hamiltonian, hence no `hamiltonian` signature and no `energy`
outputs.

The integrator's dq/dt = dH/dp and dp/dt = -dH/dq come from `tf.GradientTape` inside the graph,
exactly as in training (`hgn_tf.integrators`); the step loop is a `tf.while_loop`, so n_steps is an
input, not a constant of the graph. Calls of at most `xla_max_batch` sequences (hgn_export.json;
default 16, 0: never) run each step compiled by XLA (`integrators.xla_steps`), larger ones the
plain graph: the same numbers to float32 rounding, twice as fast at batch 1 on a CPU.
Every signature checks its inputs with `tf.debugging` asserts
(1 <= n_steps <= max_steps, 1 <= batch <= max_batch, at least k frames, dt finite with
|dt| <= max_abs_dt = MAX_DT_FACTOR x the training dt, q and p finite with |values| <=
max_abs_state; see `hgn_tf.export.limits`): a bad call fails with InvalidArgumentError naming the
argument instead of running away with memory or answering garbage. Every output is checked too:
a non-finite one (a learned Hamiltonian that diverges) fails with "`<output>` output is not
finite" rather than returning NaN or infinity.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import tempfile
import time

import tensorflow as tf
from hgn_tf.export.limits import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_STEPS,
    DEFAULT_XLA_MAX_BATCH,
    EXPORT_INFO_FILE,
    MAX_ABS_STATE,
    MAX_DT_FACTOR,
    NON_FINITE_OUTPUT,
)

from hgn_tf.errors import ExportError, folder, non_negative_int, positive_int
from hgn_tf.model import PREDICTIVE_SEED

__all__ = ["EXPORT_INFO_FILE", "EXPORT_PRIORS", "FORMAT_VERSION", "HGNExportModule",
           "NON_FINITE_OUTPUT", "PREDICTIVE_SEED", "export_info", "export_saved_model", "versions"]

# Bumped when the signatures or hgn_export.json change incompatibly.
FORMAT_VERSION = 1


def versions(out_dir) -> list[int]:
    """The versions (integer-named sub-folders holding a saved_model.pb) under `out_dir`, sorted."""
    out_dir = pathlib.Path(out_dir)
    if not out_dir.is_dir():
        return []
    return sorted(int(p.name) for p in out_dir.iterdir()
                  if p.name.isdigit() and (p / "saved_model.pb").exists())


def export_info(model, max_steps: int, max_batch: int, prior=None,
                xla_max_batch: int = DEFAULT_XLA_MAX_BATCH) -> dict:
    """The contents of hgn_export.json: everything a server needs, as plain JSON.

    `prior`: the learned prior the `sample` signature draws from, or None (N(0, I))."""
    c = model.config
    has_energy = c.dynamics == "hamiltonian"
    signatures = ["rollout", "rollout_frames", "encode", "decode"]
    if not c.deterministic:
        signatures.insert(2, "sample")
    if has_energy:
        signatures.append("hamiltonian")
    return {
        "format_version": FORMAT_VERSION,
        "resolution": model.resolution,
        "state_shape": list(model.state_shape),
        "conditioning_frames": model.conditioning_frame_count,
        "input_mode": c.input_mode,
        "input_frames": c.input_frames,
        "dt": float(c.dt),
        "max_abs_dt": float(MAX_DT_FACTOR * c.dt),
        "max_abs_state": float(MAX_ABS_STATE),
        "max_steps": max_steps,
        "max_batch": max_batch,
        "xla_max_batch": xla_max_batch,
        "has_energy": has_energy,
        "signatures": signatures,
        "sample_prior": "learned" if prior is not None else "standard",
        "rollout_draws": c.predictive_draws if c.predictive_draws > 1 else 0,
        "prior_config": prior.get_config() if prior is not None else None,
        "model_config": dataclasses.asdict(c),
    }


class HGNExportModule(tf.Module):
    """The HGN's weights and the serving functions, with fixed input signatures.

    Args:
      model: a built `hgn_tf.model.HGN`.
      info: `export_info(model, ...)`: resolution, caps and which signatures exist.
      prior: a learned prior over the initial state (`hgn_tf.prior`) for `sample`, or None
        (N(0, I)); its weights are tracked, so they are saved with the model's.
    """

    def __init__(self, model, info: dict, prior=None):
        super().__init__(name="hgn_export")
        self.model = model
        self.prior = prior
        self._k = info["conditioning_frames"]
        self._max_steps = info["max_steps"]
        self._max_batch = info["max_batch"]
        self._xla_max_batch = info.get("xla_max_batch", 0)
        self._has_energy = info["has_energy"]
        self._draws = info.get("rollout_draws", 0)
        self._max_abs_dt = info["max_abs_dt"]
        self._max_abs_state = info["max_abs_state"]
        r = info["resolution"]
        frames = tf.TensorSpec([None, None, r, r, 3], tf.uint8, name="frames")
        state = tf.TensorSpec([None, *info["state_shape"]], tf.float32)
        int_scalar = tf.TensorSpec([], tf.int32)
        dt = tf.TensorSpec([], tf.float32, name="dt")
        rollout_inputs = [frames, tf.TensorSpec([], tf.int32, name="n_steps"), dt]
        self.functions = {
            "rollout": tf.function(self._rollout, input_signature=rollout_inputs),
            "rollout_frames": tf.function(self._rollout_frames, input_signature=rollout_inputs),
            "encode": tf.function(self._encode, input_signature=[frames]),
            "decode": tf.function(self._decode, input_signature=[
                tf.TensorSpec.from_spec(state, name="q")]),
        }
        if "sample" in info["signatures"]:
            self.functions["sample"] = tf.function(self._sample, input_signature=[
                tf.TensorSpec.from_spec(int_scalar, name="n"),
                tf.TensorSpec.from_spec(int_scalar, name="n_steps"), dt,
                tf.TensorSpec.from_spec(int_scalar, name="seed")])
        if self._has_energy:
            self.functions["hamiltonian"] = tf.function(self._hamiltonian, input_signature=[
                tf.TensorSpec.from_spec(state, name="q"),
                tf.TensorSpec.from_spec(state, name="p")])

    # ------------------------------------------------------------------ checks (in the graph)
    def _check_batch(self, batch, name):
        return [
            tf.debugging.assert_greater_equal(
                batch, 1, message=f"`{name}`: the batch must hold at least one sequence"),
            tf.debugging.assert_less_equal(
                batch, self._max_batch,
                message=f"`{name}`: the batch must be at most max_batch={self._max_batch}"),
        ]

    def _check_steps(self, n_steps, dt):
        return [
            tf.debugging.assert_greater_equal(n_steps, 1, message="`n_steps` must be >= 1"),
            tf.debugging.assert_less_equal(
                n_steps, self._max_steps,
                message=f"`n_steps` must be at most max_steps={self._max_steps}"),
            tf.debugging.assert_all_finite(dt, message="`dt` must be finite"),
            tf.debugging.assert_less_equal(
                tf.abs(dt), self._max_abs_dt,
                message=f"`dt` must be in [-{self._max_abs_dt:g}, {self._max_abs_dt:g}] "
                        f"(|dt| at most {MAX_DT_FACTOR:g}x the training dt)"),
        ]

    def _check_state(self, x, name):
        return [
            tf.debugging.assert_all_finite(x, message=f"`{name}` must be finite"),
            tf.debugging.assert_less_equal(
                tf.reduce_max(tf.abs(x)), self._max_abs_state,
                message=f"`{name}`: values must be in [-{self._max_abs_state:g}, "
                        f"{self._max_abs_state:g}]"),
        ]

    @staticmethod
    def _finite(outputs: dict) -> dict:
        """The outputs, each checked: NaN or infinity fails the call instead of being returned."""
        return {k: tf.debugging.assert_all_finite(
                    v, message=f"`{k}` {NON_FINITE_OUTPUT} for these inputs (the learned dynamics "
                               "diverged: use a smaller |dt| or fewer n_steps)")
                for k, v in outputs.items()}

    def _conditioning(self, frames):
        """The first k frames with a static frame axis (the encoder stacks them on channels)."""
        checks = self._check_batch(tf.shape(frames)[0], "frames") + [
            tf.debugging.assert_greater_equal(
                tf.shape(frames)[1], self._k,
                message=f"`frames`: the encoder reads {self._k} conditioning frames; "
                        "give at least that many"),
        ]
        with tf.control_dependencies(checks):
            frames = tf.identity(frames[:, : self._k])
        return tf.ensure_shape(frames, [None, self._k, *frames.shape[2:]])

    # ------------------------------------------------------------------ signatures
    def _rollout(self, frames, n_steps, dt, with_energy=None):
        frames = self._conditioning(frames)
        with tf.control_dependencies(self._check_steps(n_steps, dt)):
            n_steps = tf.identity(n_steps)
        with_energy = self._has_energy if with_energy is None else with_energy
        # A model trained on the predictive mean of K draws serves that mean as its frames
        # (`predictive_draws`; self._draws is K > 1, or 0); the states are the posterior mean's.
        out = self.model.rollout(frames, n_steps, dt=dt, sample=False,
                                 with_energy=with_energy, xla_max_batch=self._xla_max_batch,
                                 draws=self._draws, seed=tf.constant(PREDICTIVE_SEED))
        keys = ("frames", "q", "p", "energy") if with_energy else ("frames", "q", "p")
        return self._finite({k: out[k] for k in keys})

    def _rollout_frames(self, frames, n_steps, dt):
        return {"frames": self._rollout(frames, n_steps, dt, with_energy=False)["frames"]}

    def _sample(self, n, n_steps, dt, seed):
        with tf.control_dependencies(self._check_batch(n, "n") + self._check_steps(n_steps, dt)):
            n = tf.identity(n)
        out = self.model.sample(n, n_steps, dt=dt, seed=tf.stack([seed, tf.constant(0)]),
                                prior=self.prior, xla_max_batch=self._xla_max_batch)
        keys = ("frames", "energy") if self._has_energy else ("frames",)
        return self._finite({k: out[k] for k in keys})

    def _encode(self, frames):
        frames = self._conditioning(frames)
        q, p, _ = self.model.encode(tf.cast(frames, tf.float32) / 255.0, sample=False)
        return self._finite({"q": q, "p": p})

    def _decode(self, q):
        with tf.control_dependencies(self._check_batch(tf.shape(q)[0], "q")
                                     + self._check_state(q, "q")):
            q = tf.identity(q)
        return self._finite({"frames": self.model.decode(q)})

    def _hamiltonian(self, q, p):
        checks = self._check_batch(tf.shape(q)[0], "q") + [
            tf.debugging.assert_equal(tf.shape(q)[0], tf.shape(p)[0],
                                      message="`q` and `p` must have the same batch size")]
        checks += self._check_state(q, "q") + self._check_state(p, "p")
        with tf.control_dependencies(checks):
            q, p = tf.identity(q), tf.identity(p)
        return self._finite({"energy": self.model.hamiltonian(q, p)})


def _load_model(run_dir_or_model):
    if isinstance(run_dir_or_model, (str, os.PathLike)):
        run_dir = pathlib.Path(run_dir_or_model)
        if not run_dir.is_dir():
            raise ExportError(f"`run_dir` {str(run_dir)!r} does not exist; give the folder of a "
                              "finished training run (`hgn train --run-dir R`).", "run_dir")
        # The export may use the training code; the server never does.
        from hgn_tf.train import load_run

        return load_run(run_dir)[1]
    if not hasattr(run_dir_or_model, "rollout") or not getattr(run_dir_or_model, "built", False):
        raise ExportError("`run_dir_or_model` must be a run folder or a built HGN model "
                          f"(`model.build_all()`), got {run_dir_or_model!r}.", "run_dir_or_model")
    return run_dir_or_model


def _remove_leftovers(out_dir: pathlib.Path, stale_after_s: float = 3600.0) -> None:
    """Delete the `.tmp-<version>-<pid>-*` folders of killed exports (their process is gone).

    A folder of a live export (another process writing now) is left alone; one without a pid in
    its name (written before the pid was recorded) is deleted once it is an hour old.
    """
    for tmp in out_dir.glob(".tmp-*"):
        parts = tmp.name.split("-")
        pid = int(parts[2]) if len(parts) > 3 and parts[2].isdigit() else None
        if pid is None:
            try:
                stale = time.time() - tmp.stat().st_mtime > stale_after_s
            except OSError:
                continue
        else:
            try:
                os.kill(pid, 0)
                stale = False
            except ProcessLookupError:
                stale = True
            except PermissionError:  # alive, another user's
                stale = False
        if stale and tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)


EXPORT_PRIORS = ("auto", "standard", "learned")


def _resolve_prior(run_dir_or_model, model, prior):
    """The learned prior `sample` will use (or None): see `export_saved_model`'s `prior`."""
    if not isinstance(prior, str):
        return prior  # a prior object
    if prior not in EXPORT_PRIORS:
        raise ExportError(f"`prior` must be one of {EXPORT_PRIORS} or a learned prior, got "
                          f"{prior!r}.", "prior")
    if prior == "standard" or model.config.deterministic:
        if prior == "learned":
            raise ExportError("`prior` 'learned': a deterministic HGN has no `sample` "
                              "signature.", "prior")
        return None
    if not isinstance(run_dir_or_model, (str, os.PathLike)):
        if prior == "learned":
            raise ExportError("`prior` 'learned' needs a run folder holding a fitted prior "
                              "(or pass the prior object itself) when exporting a model "
                              "object.", "prior")
        return None
    from hgn_tf.prior import PRIOR_CONFIG_FILE, load_prior

    learned = load_prior(run_dir_or_model)
    if learned is None and prior == "learned":
        raise ExportError(f"`prior` 'learned': {str(run_dir_or_model)!r} has no "
                          f"{PRIOR_CONFIG_FILE}; fit one first (`hgn fit-prior --run-dir "
                          f"{run_dir_or_model}`).", "prior")
    return learned


def export_saved_model(run_dir_or_model, out_dir, version: int | None = None,
                       max_steps: int = DEFAULT_MAX_STEPS,
                       max_batch: int = DEFAULT_MAX_BATCH, prior="auto",
                       xla_max_batch: int = DEFAULT_XLA_MAX_BATCH,
                       precision: str | None = None) -> pathlib.Path:
    """Write the model as SavedModel version `version` under `out_dir`.

    Args:
      run_dir_or_model: a finished training run's folder (read with `hgn_tf.train.load_run`) or a
        built `HGN`.
      out_dir: the model's base folder (TF Serving's `--model_base_path`); created if missing.
      version: the version folder's integer name; None takes the next after the existing ones
        (1 for an empty folder).
      max_steps: the largest `n_steps` a call may ask for.
      max_batch: the largest batch (and `n` of `sample`) a call may ask for.
      prior: what `sample` draws initial states from: "auto" (the run folder's learned prior if
        it has one, else N(0, I)), "standard" (N(0, I)), "learned" (the run folder's learned
        prior; an error if it has none), or a learned prior object (`hgn_tf.prior`).
      xla_max_batch: `rollout` and `sample` calls of at most this many sequences run their
        integrator steps compiled by XLA (`hgn_tf.integrators.xla_steps`: a batch-1 rollout's
        steps twice as fast on a CPU; larger batches are faster without); 0: never (for a
        server built without XLA). Each new batch size compiles once (~1 s) on its first call.
      precision: what the served model computes in (`ModelConfig.precision`): None keeps the
        trained model's; "mixed_bfloat16" serves a float32-trained model with its encoder's and
        decoder's hidden convolutions in bfloat16 (faster on CPUs with AMX / AVX512-BF16 and on
        recent GPUs, at bfloat16's accuracy: bench/README.md measures both). hgn_export.json's
        `model_config.precision` records it.
    Returns:
      The version folder `out_dir/<version>`.
    Raises:
      ExportError: a missing run folder, a bad cap, or an existing version.
      RunError: an unfinished run folder.

    The SavedModel is written to a temporary folder `out_dir/.tmp-<version>-<pid>-*` (not an
    integer name, so servers ignore it) and renamed into place: a killed export leaves no
    half-written version, only that folder, which the next export into `out_dir` deletes (once
    its process is gone).
    """
    positive_int("max_steps", max_steps, ExportError)
    positive_int("max_batch", max_batch, ExportError)
    non_negative_int("xla_max_batch", xla_max_batch, ExportError)
    out_dir = folder("out_dir", out_dir, ExportError)
    if version is None:
        version = (versions(out_dir) or [0])[-1] + 1
    positive_int("version", version, ExportError)
    final = out_dir / str(version)
    if final.exists():
        raise ExportError(f"`version` {version} already exists in {str(out_dir)!r}; "
                          "leave `version=None` to write the next one.", "version")
    model = _load_model(run_dir_or_model)
    if precision is not None:
        model = model.with_precision(precision)
    learned = _resolve_prior(run_dir_or_model, model, prior)
    info = export_info(model, max_steps, max_batch, learned, xla_max_batch)
    module = HGNExportModule(model, info, learned)
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out_dir)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".tmp-{version}-{os.getpid()}-", dir=out_dir))
    try:
        info_path = tmp / EXPORT_INFO_FILE
        info_path.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        # An Asset: copied into <version>/assets/ and reachable from the loaded object.
        module.export_info = tf.saved_model.Asset(str(info_path))
        signatures = {name: fn.get_concrete_function() for name, fn in module.functions.items()}
        saved = tmp / "saved"
        tf.saved_model.save(module, str(saved), signatures=signatures)
        os.rename(saved, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
