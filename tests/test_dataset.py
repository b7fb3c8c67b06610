"""The `hamiltonian_systems` TFDS builder: loading, determinism, prefixes, stored physics."""

import hashlib
import pathlib
import subprocess
import sys

import hgn_tf.datasets  # noqa: F401  (registers the builder)
import numpy as np
import pytest
import tensorflow_datasets as tfds
from hgn_tf.datasets.hamiltonian_systems import HamiltonianSystemsConfig

from hgn_tf import physics
from hgn_tf.errors import DataError


def _build(tmp, name="t", **kw):
    cfg = HamiltonianSystemsConfig(
        name=name, **{"num_train": 6, "num_test": 3, "n_frames": 8, **kw}
    )
    b = tfds.builder("hamiltonian_systems", config=cfg, data_dir=str(tmp), num_workers=1)
    return b


def _records_digest(builder):
    files = sorted(pathlib.Path(builder.data_dir).glob("*.tfrecord*"))
    assert files
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def _by_index(builder, split):
    return {int(ex["index"]): ex for ex in tfds.as_numpy(builder.as_dataset(split=split))}


def test_tfds_load_by_name(tiny_data_dir):
    ds = tfds.load("hamiltonian_systems/pendulum", split="train", data_dir=tiny_data_dir)
    ex = next(iter(tfds.as_numpy(ds)))
    assert ex["frames"].shape == (30, 32, 32, 3) and ex["frames"].dtype == np.uint8
    assert ex["q"].shape == (30, 1) and ex["energy"].shape == (30,)
    assert set(ex["constants"]) == {"g", "l", "m"}
    # The frames are not blank: the bob differs from the background somewhere in every frame.
    assert (ex["frames"].reshape(30, -1).std(axis=1) > 5).all()


def test_two_builds_are_byte_identical(tmp_path):
    a = _build(tmp_path / "a")
    b = _build(tmp_path / "b")
    a.download_and_prepare()
    b.download_and_prepare()
    assert _records_digest(a) == _records_digest(b)


def test_a_build_in_another_process_is_byte_identical(tmp_path):
    """A rerun after a kill is a new process: protobuf's map order must not reach the bytes."""
    script = (
        "import sys, hgn_tf.datasets, tensorflow_datasets as tfds\n"
        "from hgn_tf.datasets.hamiltonian_systems import HamiltonianSystemsConfig\n"
        "cfg = HamiltonianSystemsConfig(name='t', num_train=6, num_test=3, n_frames=8)\n"
        "tfds.builder('hamiltonian_systems', config=cfg, data_dir=sys.argv[1],\n"
        "             num_workers=1).download_and_prepare()\n")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "other")], check=True,
                   capture_output=True, timeout=300)
    here = _build(tmp_path / "here")
    here.download_and_prepare()
    other = _build(tmp_path / "other")
    assert other.is_prepared() and _records_digest(here) == _records_digest(other)


def test_max_examples_gives_the_first_sequences_of_the_full_build(tmp_path):
    full = _build(tmp_path / "full")
    full.download_and_prepare()
    small = _build(tmp_path / "small")
    small.download_and_prepare(
        download_config=tfds.download.DownloadConfig(max_examples_per_split=3)
    )
    full_ex, small_ex = _by_index(full, "train"), _by_index(small, "train")
    assert sorted(small_ex) == [0, 1, 2]
    for i in small_ex:
        for key in ("frames", "q", "p", "q_noisy", "p_noisy", "energy"):
            np.testing.assert_array_equal(small_ex[i][key], full_ex[i][key])


@pytest.mark.parametrize("system", ["pendulum", "two_body", "damped_oscillator"])
def test_stored_energy_is_the_hamiltonian_of_the_stored_state(tmp_path, system):
    b = _build(tmp_path, name=f"{system}_small", system=system)
    b.download_and_prepare()
    sysm = physics.get(system)
    for ex in tfds.as_numpy(b.as_dataset(split="test")):
        h = sysm.hamiltonian(
            ex["q"].astype(np.float64), ex["p"].astype(np.float64), ex["t"].astype(np.float64)
        )
        np.testing.assert_allclose(ex["energy"], h, rtol=1e-5, atol=1e-6)
        # Noisy and clean states differ by the configured noise level.
        noise = np.concatenate([ex["q_noisy"] - ex["q"], ex["p_noisy"] - ex["p"]], axis=-1)
        assert 0 < np.abs(noise).max() < 6 * sysm.noise_std


def test_splits_differ(tmp_path):
    b = _build(tmp_path)
    b.download_and_prepare()
    train, test = _by_index(b, "train"), _by_index(b, "test")
    assert not np.array_equal(train[0]["q"], test[0]["q"])


@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(system="spring"), "system.*mass_spring.*spring"),
        (dict(resolution=48), "resolution.*32, 64.*48"),
        (dict(num_train=0), "num_train.*positive.*0"),
        (dict(n_frames=-3), "n_frames.*-3"),
        (dict(dt=0.0), "dt.*0.0"),
    ],
)
def test_bad_config_names_field_value_and_allowed(kw, words):
    with pytest.raises(DataError, match=words):
        HamiltonianSystemsConfig(name="bad", **kw)


def test_every_system_has_32_and_64_configs():
    names = {c.name for c in hgn_tf.datasets.HamiltonianSystems.BUILDER_CONFIGS}
    for s in physics.SYSTEM_NAMES:
        assert s in names and f"{s}_64" in names


def _beam_or_skip():
    return pytest.importorskip(
        "apache_beam", reason="the Beam build path needs the `beam` extra (pip install "
        "'hgn_tf[beam]'); CI installs it")


def _files(builder):
    root = pathlib.Path(builder.data_dir)
    return {f.name: f.read_bytes() for f in sorted(root.iterdir())}


def test_a_beam_build_is_byte_identical_to_the_in_process_build(tmp_path, monkeypatch):
    """Records, dataset_info.json and features: the same bytes with and without Apache Beam."""
    beam = _beam_or_skip()
    from hgn_tf.datasets.hamiltonian_systems import hamiltonian_systems_dataset_builder as hsb

    # Chunks of 2: the 7 train and 3 test sequences are 4 + 2 pipeline elements, the last of
    # each split a partial chunk, generated in whatever order the runner picks.
    monkeypatch.setattr(hsb, "BEAM_CHUNK_SIZE", 2)
    plain = _build(tmp_path / "plain", num_train=7)
    plain.download_and_prepare()
    on_beam = _build(tmp_path / "beam", num_train=7)
    # FnApiRunner: the DirectRunner's in-process engine, without its attempt to fetch Prism.
    options = beam.options.pipeline_options.PipelineOptions(["--runner=FnApiRunner"])
    on_beam.download_and_prepare(download_config=tfds.download.DownloadConfig(
        beam_options=options))
    assert on_beam._uses_beam() is False  # the Beam options were for that build only
    plain_files, beam_files = _files(plain), _files(on_beam)
    assert sorted(beam_files) == sorted(plain_files)
    assert any(name.startswith("hamiltonian_systems-train.tfrecord") for name in beam_files)
    for name, data in plain_files.items():
        assert beam_files[name] == data, name
    assert on_beam.info.splits["train"].num_examples == 7
    assert sorted(_by_index(on_beam, "test")) == [0, 1, 2]


def test_a_build_that_loses_sequences_fails_and_is_not_kept(tmp_path, monkeypatch):
    from hgn_tf.datasets.hamiltonian_systems import hamiltonian_systems_dataset_builder as hsb

    examples = hsb._ChunkExamples.examples

    def drop_index_1(self, chunk):
        return ((key, ex) for key, ex in examples(self, chunk) if key != 1)

    monkeypatch.setattr(hsb._ChunkExamples, "examples", drop_index_1)
    b = _build(tmp_path)
    with pytest.raises(RuntimeError, match="train split was written with 5 sequences instead of 6"):
        b.download_and_prepare()
    assert not b.is_prepared()
