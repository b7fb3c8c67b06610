"""TFDS harness test for `hamiltonian_systems` on tiny splits (see also tests/test_dataset.py)."""

import tensorflow_datasets as tfds
from hgn_tf.datasets.hamiltonian_systems import hamiltonian_systems_dataset_builder as hsb


class HamiltonianSystemsTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = hsb.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = [
        hsb.HamiltonianSystemsConfig(
            name="pendulum_tiny", system="pendulum", num_train=3, num_test=2, n_frames=6),
        hsb.HamiltonianSystemsConfig(
            name="three_body_tiny", system="three_body", num_train=3, num_test=2, n_frames=6),
    ]
    SPLITS = {"train": 3, "test": 2}
    SKIP_CHECKSUMS = True


if __name__ == "__main__":
    tfds.testing.test_main()
