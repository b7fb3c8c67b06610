"""The `hnn_tasks` TFDS dataset (one config per HNN state-space task)."""

from hgn_tf.datasets.hnn_tasks.hnn_tasks_dataset_builder import Builder, HNNTasksConfig

__all__ = ["Builder", "HNNTasksConfig"]
