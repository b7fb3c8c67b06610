"""`hnn_tasks`: state-space trajectories with their true time derivatives (the HNN protocol).

One config per task of `hgn_tf.baselines.tasks` (`spring`, `spring_unit`, `pendulum`,
`two_body`, `three_body`, `damped_spring`): each example is one trajectory of the task's system,
sampled and simulated in float64 as the official HNN code does (see the tasks module), stored as

    x        [T, 2n]  the state (q, p) with Gaussian noise of the task's std (the training input)
    x_clean  [T, 2n]  the noise-free state
    dxdt     [T, 2n]  the true vector field (dH/dp, -dH/dq) at x_clean (the training target)
    energy   [T]      the true energy of x_clean
    t        [T]      the times

Determinism: example i of a split is a pure function of (config.seed, split, i) (bitwise: the
integrator is per trajectory), written with the key-ordered writer of `hamiltonian_systems`.
Every array is float64, stored as raw bytes (exact).

    import hgn_tf.datasets  # registers the builders
    ds = tfds.load("hnn_tasks/spring", split="train")
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from hgn_tf.datasets.hamiltonian_systems.hamiltonian_systems_dataset_builder import (
    _KeyOrderedExampleWriter,
)

import hgn_tf.baselines.tasks as tasks
from hgn_tf.errors import DataError, check, positive_int

__all__ = ["Builder", "HNNTasksConfig"]


@dataclasses.dataclass(eq=False)
class HNNTasksConfig(tfds.core.BuilderConfig):
    """What changes the bytes of an `hnn_tasks` build.

    Attributes:
      task: one of `hgn_tf.baselines.tasks.TASK_NAMES`.
      num_train, num_test: trajectories per split (None: the task's protocol).
      seed: root of every per-trajectory seed.
    """

    task: str = "spring"
    num_train: int | None = None
    num_test: int | None = None
    seed: int = 0

    def __post_init__(self):
        check(self.task in tasks.TASK_NAMES, "task", self.task, f"one of {tasks.TASK_NAMES}",
              DataError)
        for field in ("num_train", "num_test"):
            if getattr(self, field) is not None:
                positive_int(field, getattr(self, field), DataError)
        check(isinstance(self.seed, (int, np.integer)) and self.seed >= 0, "seed", self.seed,
              "a non-negative integer", DataError)

    @property
    def hnn_task(self) -> tasks.Task:
        return tasks.get_task(self.task)


def _default_configs():
    configs = []
    for name in tasks.TASK_NAMES:
        task = tasks.get_task(name)
        configs.append(HNNTasksConfig(
            name=name, task=name,
            description=(f"{name}: {task.system} {dict(task.overrides)}, {task.n_train}+"
                         f"{task.n_test} trajectories x {task.n_points} points over "
                         f"{task.span}, noise std {task.noise_std}.")))
    return configs


class Builder(tfds.core.GeneratorBasedBuilder):
    """State-space HNN tasks (see the module docstring)."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: the HNN paper's tasks and the damped spring.",
        "1.1.0": "two_body and three_body draw their initial states as the official code does; "
                 "the systems' own sampler is in the new two_body_uniform and "
                 "three_body_uniform configs.",
    }
    BUILDER_CONFIGS = _default_configs()
    DEFAULT_CONFIG_NAME = "spring"
    pkg_dir_path = epath.Path(__file__).parent
    code_path = epath.Path(__file__)

    def _example_writer(self) -> tfds.core.writer.ExampleWriter:
        return _KeyOrderedExampleWriter(file_format=self.info.file_format)

    def _info(self) -> tfds.core.DatasetInfo:
        task = self.builder_config.hnn_task
        t, d = task.n_points, 2 * task.dim
        # ZLIB: the raw float64 bytes (a plain float64 Tensor goes through tf.train.Example's
        # float_list, which is float32).
        state = tfds.features.Tensor(shape=(t, d), dtype=np.float64,
                                     encoding=tfds.features.Encoding.ZLIB)
        series = tfds.features.Tensor(shape=(t,), dtype=np.float64,
                                      encoding=tfds.features.Encoding.ZLIB)
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "x": state,
                "x_clean": state,
                "dxdt": state,
                "energy": series,
                "t": series,
                "index": np.int64,
            }),
            supervised_keys=None,
            homepage="https://arxiv.org/abs/1906.01563",
            metadata=tfds.core.MetadataDict(
                task=task.name, system=task.system, overrides=dict(task.overrides),
                span=list(task.span), noise_std=task.noise_std, sampler=task.sampler,
                seed=self.builder_config.seed),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Simulated: nothing is downloaded.
        cfg, task = self.builder_config, self.builder_config.hnn_task
        return {
            "train": self._generate_examples("train", cfg.num_train or task.n_train),
            "test": self._generate_examples("test", cfg.num_test or task.n_test),
        }

    def _generate_examples(self, split: str, n: int):
        cfg = self.builder_config
        data = tasks.sample_split(cfg.hnn_task, split, n, seed=cfg.seed)
        for i in range(n):
            yield i, {"x": data["x"][i], "x_clean": data["x_clean"][i], "dxdt": data["dxdt"][i],
                      "energy": data["energy"][i], "t": data["t"], "index": np.int64(i)}
