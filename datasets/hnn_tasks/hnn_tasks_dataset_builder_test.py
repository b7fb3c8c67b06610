"""TFDS harness test for `hnn_tasks` on tiny splits (see also tests/test_hnn.py)."""

import tensorflow_datasets as tfds
from hgn_tf.datasets.hnn_tasks import hnn_tasks_dataset_builder as htb


class HNNTasksTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = htb.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = [
        htb.HNNTasksConfig(name="pendulum_tiny", task="pendulum", num_train=3, num_test=2),
        htb.HNNTasksConfig(name="three_body_tiny", task="three_body", num_train=3, num_test=2),
    ]
    SPLITS = {"train": 3, "test": 2}
    SKIP_CHECKSUMS = True


if __name__ == "__main__":
    tfds.testing.test_main()
