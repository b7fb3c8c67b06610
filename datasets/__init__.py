"""TFDS datasets of hgn_tf, installed as `hgn_tf.datasets`.

Importing this package registers the `hamiltonian_systems` builder with TFDS::

    import hgn_tf.datasets  # noqa: F401
    ds = tfds.load("hamiltonian_systems/pendulum", split="train")
"""

from hgn_tf.datasets.hamiltonian_systems import Builder as HamiltonianSystems  # noqa: F401
from hgn_tf.datasets.hamiltonian_systems import HamiltonianSystemsConfig  # noqa: F401

__all__ = ["HamiltonianSystems", "HamiltonianSystemsConfig"]
