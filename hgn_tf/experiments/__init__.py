"""Experiments that train and compare models: the only layer that knows every model family.

    hgn_tf.experiments.table1      HGN's Table 1 / Table 2 (`hgn experiment table1`)
    hgn_tf.experiments.reference   the published numbers printed beside ours
"""
