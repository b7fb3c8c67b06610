"""`hamiltonian_systems`: videos of simulated Hamiltonian systems (HGN, Toth et al. 2020).

One config per physical system (`mass_spring`, `pendulum`, `two_body`, `three_body`,
`double_pendulum`, `damped_oscillator`) at 32x32, and a `<system>_64` config at 64x64 (the
resolution changes the bytes on disk, so it is a config; nothing else is).

Each example is one sequence: the system is sampled at an energy radius r, simulated in float64
(see `hgn_tf.physics`), Gaussian noise of std `noise_std` is added to every phase-space
coordinate of every frame, and the noisy positions are rendered as soft discs.

Determinism: example i of split s is a pure function of (config.seed, s, i). Two builds of the
same config give byte-identical records, in one process or in two (a build killed and run again,
another machine with the same library versions), and `max_examples_per_split=N` gives exactly
the first N sequences of the full build. The records are written by `_KeyOrderedExampleWriter`:
TFDS serializes each tf.train.Example with protobuf's default, whose map order (the feature
names) varies from process to process under the upb backend; the decoded examples were always
equal, the bytes were not.

Usage::

    import hgn_tf.datasets  # registers the builder
    ds = tfds.load("hamiltonian_systems/pendulum", split="train")
    # a small build: the first 256 sequences of each split
    ds = tfds.load("hamiltonian_systems/pendulum", split="train", download_and_prepare_kwargs=dict(
        download_config=tfds.download.DownloadConfig(max_examples_per_split=256)))

or from the shell: `tfds build --imports hgn_tf.datasets hamiltonian_systems/pendulum`.

Apache Beam: a build given Beam pipeline options (`tfds build ... --beam_pipeline_options=
"runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"`, or
`DownloadConfig(beam_options=PipelineOptions([...]))`, or a `beam_runner`) generates each split as
a Beam pipeline: `Create(chunk starts) | Reshuffle | FlatMap(chunk -> examples)`, where a chunk of
`BEAM_CHUNK_SIZE` consecutive indices is the same `hgn_tf.physics.generate.generate` call as the
in-process path's, so the examples, their keys and hence the records are the same; TFDS's Beam
writer shuffles by the same hashed keys. Without Beam options the build runs in process
(`hgn_tf.physics.parallel`, threads). `max_examples_per_split=N` is honoured on both paths (TFDS
itself ignores it for Beam pipelines; here the split is cut to its first N indices). When every
split fits in one shard (under 128 MiB: up to ~27,000 32x32 pendulum sequences of ~5 KB, fewer
with more bodies or at 64x64) the two builds are identical files, `dataset_info.json` included;
with several shards the records, read in shard order, are still the same byte for byte, but
TFDS's Beam writer cuts the shards by hashed-key range where its in-process writer cuts them
by count, so the shard boundaries (and `shard_lengths`) differ.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from tensorflow.core.example import example_pb2

from hgn_tf import physics
from hgn_tf.errors import DataError, check, positive_int
from hgn_tf.physics import parallel
from hgn_tf.physics.generate import generate as _generate_sequences

__all__ = ["BEAM_CHUNK_SIZE", "Builder", "HamiltonianSystemsConfig", "RESOLUTIONS"]

RESOLUTIONS = physics.SUPPORTED_RESOLUTIONS
# Sequences per element of the Beam pipeline: one `generate` call, about a second of one core for
# pendulum on a quiet machine (`bench/bench_generation.py`: 60,000 in 40-85 s on 2 cores).
BEAM_CHUNK_SIZE = 250


class _KeyOrderedExampleWriter(tfds.core.writer.ExampleWriter):
    """TFDS's record writer, with each example re-serialized with its feature map in key order.

    (`SerializeToString(deterministic=True)`: the bytes no longer depend on the process.)
    """

    def write(self, path, examples):
        def ordered():
            for key, serialized in examples:
                example = example_pb2.Example.FromString(serialized)
                yield key, example.SerializeToString(deterministic=True)

        return super().write(path, ordered())


@dataclasses.dataclass(eq=False)
class HamiltonianSystemsConfig(tfds.core.BuilderConfig):
    """What changes the bytes of a `hamiltonian_systems` build.

    Attributes:
      system: one of `hgn_tf.physics.SYSTEM_NAMES`.
      resolution: frame height and width in pixels, 32 (HGN appendix A.1) or 64 (HGN main text).
      num_train, num_test: sequences per split (paper: 50,000 and 10,000).
      n_frames: frames per sequence (paper: 30).
      dt: time between frames (0.125, the HGN integrator step; as in the reproduction).
      seed: root of every per-example seed.
    """

    system: str = "pendulum"
    resolution: int = 32
    num_train: int = 50_000
    num_test: int = 10_000
    n_frames: int = physics.STORED_FRAMES
    dt: float = 0.125
    seed: int = 0

    def __post_init__(self):
        check(self.system in physics.SYSTEM_NAMES, "system", self.system,
              f"one of {physics.SYSTEM_NAMES}", DataError)
        check(self.resolution in RESOLUTIONS, "resolution", self.resolution,
              f"one of {RESOLUTIONS}", DataError)
        for field in ("num_train", "num_test", "n_frames"):
            positive_int(field, getattr(self, field), DataError)
        check(self.dt > 0, "dt", self.dt, "a positive float", DataError)
        check(isinstance(self.seed, (int, np.integer)) and self.seed >= 0, "seed", self.seed,
              "a non-negative integer", DataError)


def _default_configs():
    configs = []
    for name in physics.SYSTEM_NAMES:
        system = physics.get(name)
        for resolution in RESOLUTIONS:
            configs.append(HamiltonianSystemsConfig(
                name=name if resolution == 32 else f"{name}_{resolution}",
                description=(f"{name} at {resolution}x{resolution}; constants "
                             f"{system.constants()}, r ~ U{tuple(system.radius_range)}, "
                             f"noise std {system.noise_std}."),
                system=name,
                resolution=resolution,
            ))
    return configs


class Builder(tfds.core.GeneratorBasedBuilder):
    """Simulated and rendered Hamiltonian systems (see the module docstring)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: six systems, 32x32 and 64x64."}
    BUILDER_CONFIGS = _default_configs()
    DEFAULT_CONFIG_NAME = "pendulum"
    # TFDS infers these folders from the module name (hgn_tf.datasets.hamiltonian_systems), but
    # setup.cfg maps `hgn_tf.datasets` onto the top-level `datasets/` folder: point at the file.
    pkg_dir_path = epath.Path(__file__).parent
    code_path = epath.Path(__file__)

    def __init__(self, *, num_workers: int | None = None, **kwargs):
        """`num_workers`: generation threads (None: all cores). Not part of the bytes."""
        self._num_workers = num_workers
        super().__init__(**kwargs)

    @property
    def physical_system(self):
        """The `hgn_tf.physics` system this config simulates."""
        return physics.get(self.builder_config.system)

    def _example_writer(self) -> tfds.core.writer.ExampleWriter:
        return _KeyOrderedExampleWriter(file_format=self.info.file_format)

    def _info(self) -> tfds.core.DatasetInfo:
        cfg = self.builder_config
        system = self.physical_system
        t, r, n = cfg.n_frames, cfg.resolution, system.dim
        state = tfds.features.Tensor(shape=(t, n), dtype=np.float32)
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "frames": tfds.features.Tensor(
                    shape=(t, r, r, 3), dtype=np.uint8, encoding=tfds.features.Encoding.ZLIB),
                "q": state,
                "p": state,
                "q_noisy": state,
                "p_noisy": state,
                "energy": tfds.features.Tensor(shape=(t,), dtype=np.float32),
                "t": tfds.features.Tensor(shape=(t,), dtype=np.float32),
                "index": np.int64,
                "constants": tfds.features.FeaturesDict(
                    {k: np.float32 for k in sorted(system.constants())}),
            }),
            supervised_keys=None,
            homepage="https://arxiv.org/abs/1909.13789",
            metadata=tfds.core.MetadataDict(
                system=cfg.system, dt=cfg.dt, n_frames=cfg.n_frames, seed=cfg.seed,
                noise_std=float(system.noise_std), radius_range=list(system.radius_range),
                constants=system.constants()),
        )

    def _generate_splits(self, dl_manager, download_config):
        # TFDS passes the download config (Beam options, max_examples_per_split) only here; the
        # split generators read it.
        self._download_config = download_config
        try:
            split_infos = super()._generate_splits(dl_manager, download_config)
        finally:
            self._download_config = None
        _check_complete(split_infos, self._expected_sizes(download_config))
        return split_infos

    def _expected_sizes(self, download_config) -> dict[str, int]:
        cfg, limit = self.builder_config, download_config.max_examples_per_split
        return {split: n if limit is None else min(n, limit)
                for split, n in (("train", cfg.num_train), ("test", cfg.num_test))}

    def _uses_beam(self) -> bool:
        """True when the build was given Beam pipeline options or a Beam runner."""
        dc = getattr(self, "_download_config", None)
        return dc is not None and (dc.beam_options is not None or dc.beam_runner is not None)

    def _split_generators(self, dl_manager):
        del dl_manager  # Simulated: nothing is downloaded.
        cfg = self.builder_config
        return {
            "train": self._generate_examples(split="train", n=cfg.num_train),
            "test": self._generate_examples(split="test", n=cfg.num_test),
        }

    def _generate_examples(self, split: str, n: int):
        """(key, example) pairs: a Beam PTransform when given Beam options, else a generator."""
        if self._uses_beam():
            limit = self._download_config.max_examples_per_split
            return self._beam_examples(split, n if limit is None else min(n, limit))
        return self._local_examples(split, n)

    def _chunk_examples(self, split: str, n: int) -> _ChunkExamples:
        cfg = self.builder_config
        return _ChunkExamples(system=cfg.system, n=n, seed=cfg.seed, split=split,
                              n_frames=cfg.n_frames, dt=cfg.dt, resolution=cfg.resolution)

    def _local_examples(self, split: str, n: int):
        cfg = self.builder_config
        to_examples = self._chunk_examples(split, n)
        chunks = parallel.generate_chunks(
            self.physical_system, n, seed=cfg.seed, split=split, n_frames=cfg.n_frames,
            dt=cfg.dt, resolution=cfg.resolution, num_workers=self._num_workers)
        for chunk in chunks:
            yield from to_examples.examples(chunk)

    def _beam_examples(self, split: str, n: int):
        beam = tfds.core.lazy_imports.apache_beam
        # Reshuffle: a runner would otherwise fuse Create with the generation and run every
        # chunk on the one worker that read the list of starts.
        return (beam.Create(list(range(0, n, BEAM_CHUNK_SIZE)))
                | "Spread" >> beam.Reshuffle()
                | "Generate" >> beam.FlatMap(self._chunk_examples(split, n).generate,
                                             chunk_size=BEAM_CHUNK_SIZE))


def _check_complete(split_infos, expected: dict[str, int]) -> None:
    """RuntimeError unless every split holds the sequences it was built with.

    Raised inside TFDS's build, before the data is moved into place, so that a build that lost
    examples leaves only its `incomplete.*` folder. (Beam 2.77's FnApiRunner with
    `direct_num_workers=2` in multi_processing mode once wrote 31,302 of the 50,000 train
    sequences of pendulum without an error: see bench/README.md.)
    """
    for info in split_infos:
        want = expected[info.name]
        if info.num_examples != want:
            raise RuntimeError(
                f"hamiltonian_systems: the {info.name} split was written with "
                f"{info.num_examples} sequences instead of {want}; the build is incomplete and "
                "was not kept. Build again (on Beam: another runner or fewer workers).")


@dataclasses.dataclass(frozen=True)
class _ChunkExamples:
    """Turns chunks of `generate.generate` output into TFDS (key, example) pairs.

    Plain data (picklable): Beam sends it to its workers, which rebuild the system by name.
    """

    system: str
    n: int
    seed: int
    split: str
    n_frames: int
    dt: float
    resolution: int

    def generate(self, start: int, chunk_size: int):
        """Examples [start, min(start + chunk_size, n)) of the split, generated here."""
        chunk = _generate_sequences(
            physics.get(self.system), min(chunk_size, self.n - start), seed=self.seed,
            split=self.split, start_index=start, n_frames=self.n_frames, dt=self.dt,
            resolution=self.resolution)
        return self.examples(chunk)

    def examples(self, chunk: dict):
        constants = {k: np.float32(v) for k, v in physics.get(self.system).constants().items()}
        for j, index in enumerate(chunk["index"]):
            yield int(index), {
                "frames": chunk["frames"][j],
                "q": chunk["q"][j],
                "p": chunk["p"][j],
                "q_noisy": chunk["q_noisy"][j],
                "p_noisy": chunk["p_noisy"][j],
                "energy": chunk["energy"][j],
                "t": chunk["t"],
                "index": np.int64(index),
                "constants": constants,
            }
