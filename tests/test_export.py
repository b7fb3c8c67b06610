"""The SavedModel export is a contract: a fresh process without hgn_tf loads it and gets the
Keras model's numbers from every signature; `saved_model_cli` sees the signatures; the graph
refuses bad calls; versions are numbered and written atomically."""

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from hgn_tf.export import saved_model
from hgn_tf.export.saved_model import EXPORT_INFO_FILE, export_saved_model, versions

from hgn_tf import cli, plots
from hgn_tf import config as C
from hgn_tf.errors import ExportError, RunError

N_STEPS = 6
MAX_STEPS, MAX_BATCH = 50, 4
SIGNATURES = {
    "rollout": {"frames", "n_steps", "dt"},
    "rollout_frames": {"frames", "n_steps", "dt"},
    "sample": {"n", "n_steps", "dt", "seed"},
    "encode": {"frames"},
    "decode": {"q"},
    "hamiltonian": {"q", "p"},
}

# Runs in a fresh interpreter from an empty folder: the artifact alone, hgn_tf unimportable.
FRESH_PROCESS = r"""
import sys
sys.modules["hgn_tf"] = None
import json
import numpy as np
import tensorflow as tf
try:
    import hgn_tf
except ImportError:
    pass
else:
    raise SystemExit("hgn_tf should not be importable here")

export_dir, inputs_path, out_path = sys.argv[1:]
x = dict(np.load(inputs_path))
loaded = tf.saved_model.load(export_dir)
sig = loaded.signatures
out, report = {}, {"inputs": {}, "errors": {}}
for name, fn in sig.items():
    report["inputs"][name] = sorted(fn.structured_input_signature[1])

def call(tag, name, **kwargs):
    result = sig[name](**{k: tf.constant(v) for k, v in kwargs.items()})
    for key, value in result.items():
        out[f"{tag}/{key}"] = value.numpy()
    return result

frames, n, dt = x["frames"], np.int32(x["n_steps"]), np.float32(x["dt"])
fwd = call("forward", "rollout", frames=frames, n_steps=n, dt=dt)
call("backward", "rollout", frames=frames, n_steps=n, dt=-dt)
call("faster", "rollout", frames=frames, n_steps=n, dt=2 * dt)
call("longer_clip", "rollout", frames=x["longer_frames"], n_steps=n, dt=dt)
call("encode", "encode", frames=frames)
q_last, p_last = fwd["q"][:, -1], fwd["p"][:, -1]
call("decode", "decode", q=q_last)
call("hamiltonian", "hamiltonian", q=q_last, p=p_last)
for tag, seed in (("sample_a", 7), ("sample_b", 7), ("sample_c", 8)):
    call(tag, "sample", n=np.int32(2), n_steps=n, dt=dt, seed=np.int32(seed))

too_many_steps = np.int32(x["max_steps"] + 1)
too_big_batch = np.zeros((x["max_batch"] + 1,) + frames.shape[1:], np.uint8)
bad_calls = {
    "n_steps_zero": ("rollout", dict(frames=frames, n_steps=np.int32(0), dt=dt)),
    "n_steps_over_cap": ("rollout", dict(frames=frames, n_steps=too_many_steps, dt=dt)),
    "dt_inf": ("rollout", dict(frames=frames, n_steps=n, dt=np.float32("inf"))),
    "batch_over_cap": ("encode", dict(frames=too_big_batch)),
    "too_few_frames": ("encode", dict(frames=frames[:, :1])),
    "n_over_cap": ("sample", dict(n=np.int32(len(too_big_batch)), n_steps=n, dt=dt,
                                  seed=np.int32(0))),
    "dt_1e37": ("rollout", dict(frames=frames, n_steps=n, dt=np.float32(1e37))),
    "sample_dt_over_range": ("sample", dict(n=np.int32(1), n_steps=n, dt=np.float32(-1e30),
                                            seed=np.int32(0))),
    "decode_q_3e38": ("decode", dict(q=np.full(q_last.shape, 3e38, np.float32))),
    "hamiltonian_p_3e38": ("hamiltonian", dict(q=q_last.numpy(),
                                               p=np.full(q_last.shape, 3e38, np.float32))),
}
for tag, (name, kwargs) in bad_calls.items():
    try:
        sig[name](**{k: tf.constant(v) for k, v in kwargs.items()})
        report["errors"][tag] = None
    except tf.errors.InvalidArgumentError as e:
        report["errors"][tag] = e.message
np.savez(out_path, **out)
print("REPORT " + json.dumps(report))
"""


@pytest.fixture(scope="module")
def trained(tiny_data_dir, tmp_path_factory):
    """A tiny run trained for a few steps: (config, run folder, the in-memory Keras model)."""
    from hgn_tf.train import train

    cfg = C.tiny("pendulum").replace(data=dict(data_dir=tiny_data_dir))
    run_dir = tmp_path_factory.mktemp("export_run")
    model, _ = train(cfg, run_dir, verbose=0)
    return cfg, run_dir, model


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """The run exported by `hgn export` (as version 1 of a new model folder)."""
    _, run_dir, _ = trained
    base = tmp_path_factory.mktemp("models") / "hgn"
    assert cli.main(["export", "--run-dir", str(run_dir), "--out", str(base),
                     "--max-steps", str(MAX_STEPS), "--max-batch", str(MAX_BATCH)]) == 0
    return base, base / "1"


@pytest.fixture(scope="module")
def fresh(trained, exported, tmp_path_factory):
    """Every signature called in a fresh process that cannot import hgn_tf."""
    from hgn_tf import data

    cfg = trained[0]
    frames = plots.to_uint8(data.load_arrays(cfg.data, "test", limit=3)["frames"])
    rng = np.random.default_rng(0)
    extra = rng.integers(0, 256, frames.shape[:1] + (3,) + frames.shape[2:], dtype=np.uint8)
    work = tmp_path_factory.mktemp("fresh")
    inputs = {"frames": frames, "longer_frames": np.concatenate([frames, extra], axis=1),
              "n_steps": N_STEPS, "dt": cfg.model.dt, "max_steps": MAX_STEPS,
              "max_batch": MAX_BATCH}
    np.savez(work / "inputs.npz", **inputs)
    script = work / "fresh_process.py"
    script.write_text(FRESH_PROCESS)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, str(script), str(exported[1]), str(work / "inputs.npz"),
         str(work / "outputs.npz")],
        check=False, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.split("REPORT ", 1)[1])
    return inputs, dict(np.load(work / "outputs.npz")), report


def test_fresh_process_sees_the_six_signatures_with_their_input_names(fresh):
    _, _, report = fresh
    assert {k: set(v) for k, v in report["inputs"].items()} == SIGNATURES


@pytest.mark.parametrize("tag, dt_scale", [("forward", 1.0), ("backward", -1.0),
                                           ("faster", 2.0), ("longer_clip", 1.0)])
def test_rollout_matches_the_keras_model(fresh, trained, tag, dt_scale):
    inputs, out, _ = fresh
    cfg, _, model = trained
    frames = inputs["longer_frames"] if tag == "longer_clip" else inputs["frames"]
    k = cfg.data.n_frames  # autoencode: the encoder reads the training sequence length
    want = model.rollout(frames[:, :k], N_STEPS, dt=dt_scale * cfg.model.dt)
    for key in ("frames", "q", "p", "energy"):
        got = out[f"{tag}/{key}"]
        assert got.dtype == np.float32 and got.shape[:2] == (3, N_STEPS)
        np.testing.assert_allclose(got, want[key], atol=1e-5, err_msg=f"{tag}/{key}")
    assert 0.0 <= out[f"{tag}/frames"].min() and out[f"{tag}/frames"].max() <= 1.0


def test_time_direction_and_speed_change_the_path_not_the_start(fresh):
    _, out, _ = fresh
    start = out["forward/q"][:, 0]
    for tag in ("backward", "faster"):
        np.testing.assert_allclose(out[f"{tag}/q"][:, 0], start, atol=1e-6)
        assert np.abs(out[f"{tag}/q"][:, 1:] - out["forward/q"][:, 1:]).max() > 1e-4


def test_encode_decode_hamiltonian_match_the_keras_model_and_each_other(fresh, trained):
    inputs, out, _ = fresh
    _, _, model = trained
    q0, p0, _ = model.encode(inputs["frames"].astype(np.float32) / 255.0)
    np.testing.assert_allclose(out["encode/q"], q0, atol=1e-5)
    np.testing.assert_allclose(out["encode/p"], p0, atol=1e-5)
    q_last, p_last = out["forward/q"][:, -1], out["forward/p"][:, -1]
    np.testing.assert_allclose(out["decode/frames"], model.decode(q_last), atol=1e-5)
    np.testing.assert_allclose(out["hamiltonian/energy"], model.hamiltonian(q_last, p_last),
                               atol=1e-5)
    # The signatures tell one story: rollout starts at encode's state, its frames are decode's
    # pictures of its states, its energy is hamiltonian's value of them.
    np.testing.assert_allclose(out["forward/q"][:, 0], out["encode/q"], atol=1e-6)
    np.testing.assert_allclose(out["forward/frames"][:, -1], out["decode/frames"], atol=1e-6)
    np.testing.assert_allclose(out["forward/energy"][:, -1], out["hamiltonian/energy"], atol=1e-5)


def test_sample_is_a_function_of_the_seed(fresh, trained):
    _, out, _ = fresh
    cfg, _, model = trained
    np.testing.assert_array_equal(out["sample_a/frames"], out["sample_b/frames"])
    assert np.abs(out["sample_a/frames"] - out["sample_c/frames"]).max() > 1e-4
    want = model.sample(2, N_STEPS, dt=cfg.model.dt, seed=np.array([7, 0], np.int32))
    np.testing.assert_allclose(out["sample_a/frames"], want["frames"], atol=1e-5)
    np.testing.assert_allclose(out["sample_a/energy"], want["energy"], atol=1e-5)


@pytest.mark.parametrize("tag, named", [
    ("n_steps_zero", "n_steps"), ("n_steps_over_cap", "max_steps=50"), ("dt_inf", "dt"),
    ("batch_over_cap", "max_batch=4"), ("too_few_frames", "conditioning frames"),
    ("n_over_cap", "`n`"), ("dt_1e37", "`dt` must be in [-1, 1]"),
    ("sample_dt_over_range", "`dt` must be in"), ("decode_q_3e38", "`q`: values must be in"),
    ("hamiltonian_p_3e38", "`p`: values must be in")])
def test_the_graph_refuses_bad_calls(fresh, tag, named):
    message = fresh[2]["errors"][tag]
    assert message is not None, f"{tag} was accepted"
    assert named in message


def test_saved_model_cli_lists_the_signatures_and_inputs(exported):
    cli_bin = pathlib.Path(sys.executable).parent / "saved_model_cli"
    proc = subprocess.run([str(cli_bin), "show", "--dir", str(exported[1]), "--all"],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    blocks = proc.stdout.split("signature_def['")[1:]
    found = {}
    for block in blocks:
        name = block.split("'", 1)[0]
        if not name.startswith("__"):
            found[name] = {line.split("['")[1].split("']")[0] for line in block.splitlines()
                           if line.strip().startswith("inputs['")}
    assert found == SIGNATURES
    assert "DT_UINT8" in proc.stdout


def test_export_info_lets_a_server_work_without_hgn_tf(exported, trained):
    cfg, _, _ = trained
    info = json.loads((exported[1] / "assets" / EXPORT_INFO_FILE).read_text())
    assert info["resolution"] == 32 and info["conditioning_frames"] == cfg.data.n_frames
    assert info["state_shape"] == [cfg.model.state_size, cfg.model.state_size,
                                   cfg.model.latent_channels]
    assert (info["max_steps"], info["max_batch"]) == (MAX_STEPS, MAX_BATCH)
    assert info["dt"] == cfg.model.dt and info["has_energy"] is True
    assert info["max_abs_dt"] == 8 * cfg.model.dt and info["max_abs_state"] == 1000
    assert set(info["signatures"]) == set(SIGNATURES)
    assert C.ModelConfig(**info["model_config"]) == cfg.model
    # The run has no learned prior (`hgn fit-prior`): `sample` draws from N(0, I).
    assert info["sample_prior"] == "standard" and info["prior_config"] is None


def test_a_second_export_is_version_2_and_leaves_no_temporary_folder(exported, trained):
    base, _ = exported
    _, run_dir, model = trained
    assert export_saved_model(model, base) == base / "2"
    assert versions(base) == [1, 2] and sorted(os.listdir(base)) == ["1", "2"]
    with pytest.raises(ExportError, match="`version` 2 already exists"):
        export_saved_model(run_dir, base, version=2)


def test_a_failed_export_leaves_nothing_behind(trained, tmp_path, monkeypatch):
    _, _, model = trained

    def killed(module, path, signatures=None):
        pathlib.Path(path).mkdir()
        (pathlib.Path(path) / "saved_model.pb").write_bytes(b"half")
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(saved_model.tf.saved_model, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        export_saved_model(model, tmp_path / "hgn")
    assert os.listdir(tmp_path / "hgn") == [] and versions(tmp_path / "hgn") == []


def test_bad_arguments_are_value_errors_that_name_them(tmp_path, capsys):
    missing = tmp_path / "no_such_run"
    with pytest.raises(ExportError, match=re.escape(f"`run_dir` {str(missing)!r} does not exist")):
        export_saved_model(missing, tmp_path / "out")
    assert cli.main(["export", "--run-dir", str(missing), "--out", str(tmp_path / "out")]) == 2
    assert "no_such_run" in capsys.readouterr().err
    (tmp_path / "unfinished").mkdir()
    with pytest.raises(RunError, match="config.json"):
        export_saved_model(tmp_path / "unfinished", tmp_path / "out")
    with pytest.raises(ExportError, match="`max_steps` must be a positive integer, got 0"):
        export_saved_model(missing, tmp_path / "out", max_steps=0)
    with pytest.raises(ExportError, match="`xla_max_batch` must be a non-negative integer"):
        export_saved_model(missing, tmp_path / "out", xla_max_batch=-1)
    out = str(tmp_path / "out")
    assert cli.main(["export", "--run-dir", str(missing), "--out", out,
                     "--xla-max-batch", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--xla-max-batch: `xla_max_batch` must be" in err, err
    with pytest.raises(ExportError, match="`run_dir_or_model`"):
        export_saved_model(object(), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_float32_model_served_in_bfloat16_keeps_its_weights_and_close_frames(trained, tmp_path):
    import tensorflow as tf

    from hgn_tf.errors import ConfigError

    cfg, _, model = trained
    assert model.with_precision("float32") is model
    twin = model.with_precision("mixed_bfloat16")
    assert twin.config.precision == "mixed_bfloat16" and model.config.precision == "float32"
    for w, v in zip(model.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(w, v)
    with pytest.raises(ConfigError, match="`precision` must be one of"):
        model.with_precision("float16")
    path = export_saved_model(model, tmp_path / "hgn", precision="mixed_bfloat16")
    info = json.loads((path / "assets" / EXPORT_INFO_FILE).read_text())
    assert info["model_config"]["precision"] == "mixed_bfloat16"
    frames = np.random.default_rng(2).integers(0, 256, (2, 4, 32, 32, 3), dtype=np.uint8)
    out = tf.saved_model.load(str(path)).signatures["rollout"](
        frames=tf.constant(frames), n_steps=tf.constant(4), dt=tf.constant(cfg.model.dt))
    want = model.rollout(frames, 4)["frames"].numpy()
    diff = np.abs(out["frames"].numpy() - want)
    # bfloat16 keeps 8 bits of mantissa: pixels within a few 1/255 steps, not bit-equal.
    assert 0 < diff.max() < 0.05 and diff.mean() < 5e-3, (diff.max(), diff.mean())


def test_deterministic_direct_models_export_without_sample_and_energy(tmp_path):
    import tensorflow as tf

    from hgn_tf.train import build_model

    cfg = C.tiny("pendulum").replace(model=dict(deterministic=True, dynamics="direct"))
    model = build_model(cfg)
    path = export_saved_model(model, tmp_path / "hgn")
    loaded = tf.saved_model.load(str(path))
    assert set(loaded.signatures) == {"rollout", "rollout_frames", "encode", "decode"}
    frames = np.random.default_rng(1).integers(0, 256, (2, 4, 32, 32, 3), dtype=np.uint8)
    out = loaded.signatures["rollout"](frames=tf.constant(frames), n_steps=tf.constant(3),
                                       dt=tf.constant(0.1))
    assert set(out) == {"frames", "q", "p"}
    np.testing.assert_allclose(out["frames"], model.rollout(frames, 3, dt=0.1)["frames"],
                               atol=1e-5)
    info = json.loads((path / "assets" / EXPORT_INFO_FILE).read_text())
    assert info["has_energy"] is False
    assert info["signatures"] == ["rollout", "rollout_frames", "encode", "decode"]
    only = loaded.signatures["rollout_frames"](frames=tf.constant(frames), n_steps=tf.constant(3),
                                               dt=tf.constant(0.1))
    assert set(only) == {"frames"}
    np.testing.assert_array_equal(only["frames"], out["frames"])


def test_a_predictive_mean_model_serves_the_mean_of_its_draws(tmp_path):
    import tensorflow as tf

    from export.saved_model import PREDICTIVE_SEED
    from hgn_tf.train import build_model

    cfg = C.tiny("pendulum").replace(model=dict(predictive_draws=3))
    model = build_model(cfg)
    path = export_saved_model(model, tmp_path / "hgn")
    assert json.loads((path / "assets" / EXPORT_INFO_FILE).read_text())["rollout_draws"] == 3
    frames = np.random.default_rng(1).integers(0, 256, (2, 4, 32, 32, 3), dtype=np.uint8)
    out = tf.saved_model.load(str(path)).signatures["rollout"](
        frames=tf.constant(frames), n_steps=tf.constant(5), dt=tf.constant(cfg.model.dt))
    mean, _ = model.predictive_frames(frames, 5, 3, seed=tf.constant(PREDICTIVE_SEED))
    np.testing.assert_allclose(out["frames"], mean, atol=1e-5)
    one = model.rollout(frames, 5)  # the states and energy: the posterior mean's rollout
    assert float(tf.reduce_max(tf.abs(mean - one["frames"]))) > 1e-3
    for key in ("q", "p", "energy"):
        np.testing.assert_allclose(out[key], one[key], atol=1e-5, err_msg=key)


def test_a_vector_latent_model_exports_its_state_shape(tmp_path):
    import tensorflow as tf

    from hgn_tf.train import build_model

    cfg = C.tiny("pendulum").replace(model=dict(latent="vector", latent_channels=3))
    model = build_model(cfg)
    path = export_saved_model(model, tmp_path / "hgn")
    info = json.loads((path / "assets" / EXPORT_INFO_FILE).read_text())
    assert info["state_shape"] == [3]
    loaded = tf.saved_model.load(str(path))
    q = np.random.default_rng(2).standard_normal((2, 3)).astype(np.float32)
    p = np.random.default_rng(3).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.signatures["hamiltonian"](q=q, p=p)["energy"],
                               model.hamiltonian(q, p), atol=1e-5)
    np.testing.assert_allclose(loaded.signatures["decode"](q=q)["frames"], model.decode(q),
                               atol=1e-5)


def test_a_killed_exports_temporary_folder_is_deleted_by_the_next_export(trained, tmp_path):
    _, _, model = trained
    base = tmp_path / "hgn"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    killed = base / f".tmp-1-{dead}-abc123"  # a kill -9 mid-export leaves this
    (killed / "saved").mkdir(parents=True)
    live = base / f".tmp-1-{os.getpid()}-def456"  # an export in progress now: not touched
    live.mkdir()
    assert export_saved_model(model, base) == base / "1"
    assert sorted(os.listdir(base)) == sorted(["1", live.name])
