"""Density models on R^d: Neural Hamiltonian Flows (HGN 3.3, A.2), RealNVP, and 2-D targets.

    densities.py     mog (HGN Fig. 10), moons, ring: samplers with exact log densities
    soft_uniform.py  NHF's soft-uniform prior (HGN section 4) as a TFP distribution
    nhf.py           NeuralHamiltonianFlow: leapfrog steps of learned H = K(p) + V(q), ELBO
    realnvp.py       RealNVPFlow: tfp.bijectors.RealNVP with a Keras shift/log-scale layer
    compare.py       train both on a target, KDE pictures, the NLL / KL table (`hgn flows`)

One model family: it imports `hgn_tf.integrators` (the leapfrog) and nothing of the HGN model.
"""
