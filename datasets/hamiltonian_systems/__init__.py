"""The `hamiltonian_systems` TFDS dataset (one config per physical system)."""

from hgn_tf.datasets.hamiltonian_systems.hamiltonian_systems_dataset_builder import (
    Builder,
    HamiltonianSystemsConfig,
)

__all__ = ["Builder", "HamiltonianSystemsConfig"]
