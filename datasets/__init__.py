"""TFDS datasets of hgn_tf, installed as `hgn_tf.datasets`.

Importing this package registers the `hamiltonian_systems` and `hnn_tasks` builders with TFDS::

    import hgn_tf.datasets  # noqa: F401
    ds = tfds.load("hamiltonian_systems/pendulum", split="train")
    ds = tfds.load("hnn_tasks/spring", split="train")
"""

from hgn_tf.datasets.hamiltonian_systems import Builder as HamiltonianSystems  # noqa: F401
from hgn_tf.datasets.hamiltonian_systems import HamiltonianSystemsConfig  # noqa: F401
from hgn_tf.datasets.hnn_tasks import Builder as HNNTasks  # noqa: F401
from hgn_tf.datasets.hnn_tasks import HNNTasksConfig  # noqa: F401

__all__ = ["HNNTasks", "HNNTasksConfig", "HamiltonianSystems", "HamiltonianSystemsConfig"]
