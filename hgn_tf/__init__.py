"""hgn_tf: Hamiltonian Generative Networks (Toth et al., ICLR 2020) in TensorFlow/Keras.

Sub-packages are imported on demand so that light users (the numpy physics, the serving
client) do not pay for TensorFlow at import time:

    hgn_tf.physics       ground-truth systems, simulators and the renderer (numpy/scipy)
    hgn_tf.datasets      the `hamiltonian_systems` TFDS builder (import registers it)
    hgn_tf.integrators   Euler, leapfrog, RK4, Yoshida over a learned Hamiltonian
    hgn_tf.model         the HGN keras.Model with its GECO train_step
    hgn_tf.flows         Neural Hamiltonian Flows, RealNVP and 2-D target densities
    hgn_tf.export        SavedModel export and the TF-Serving-style REST endpoint
    hgn_tf.tuning        keras-tuner search over GECO's parameters
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
