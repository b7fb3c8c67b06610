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

__all__ = ["Builder", "HamiltonianSystemsConfig", "RESOLUTIONS"]

RESOLUTIONS = physics.SUPPORTED_RESOLUTIONS


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

    def _split_generators(self, dl_manager):
        del dl_manager  # Simulated: nothing is downloaded.
        cfg = self.builder_config
        return {
            "train": self._generate_examples(split="train", n=cfg.num_train),
            "test": self._generate_examples(split="test", n=cfg.num_test),
        }

    def _generate_examples(self, split: str, n: int):
        cfg = self.builder_config
        system = self.physical_system
        constants = {k: np.float32(v) for k, v in system.constants().items()}
        chunks = parallel.generate_chunks(
            system, n, seed=cfg.seed, split=split, n_frames=cfg.n_frames, dt=cfg.dt,
            resolution=cfg.resolution, num_workers=self._num_workers)
        for chunk in chunks:
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
