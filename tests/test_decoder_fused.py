"""The decoder's fused upsample + conv equals the plain computation it replaces.

Reference: nearest x2 upsampling (Keras UpSampling2D) followed by the 3x3 'same' and 1x1 convs,
with the same kernels; checked in value and in every gradient, and for weights files saved in the
plain layout.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from hgn_tf import networks


def _assert_close(a, b, tol, name):
    """max |a - b| <= tol * max |b|: float rounding of sums of many products, nothing more."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, name
    scale = np.abs(b).max()
    assert scale > 0, name
    assert np.abs(a - b).max() <= tol * scale, (name, np.abs(a - b).max() / scale)


def _up(x):
    return keras.layers.UpSampling2D(2, interpolation="nearest", dtype=x.dtype)(x)


def _bias_leaky_grads(f, x, kernel, bias, cotangent):
    with tf.GradientTape() as tape:
        tape.watch([x, kernel, bias])
        y = f(x, kernel, bias)
        loss = tf.reduce_sum(y * cotangent)
    return [y, *tape.gradient(loss, [x, kernel, bias])]


def _plain_conv_bias_leaky(x, kernel, bias):
    return tf.nn.leaky_relu(tf.nn.conv2d(_up(x), kernel, 1, "SAME") + bias,
                            alpha=networks.LEAKY_ALPHA)


def _bias_leaky_inputs(dtype, batch, height, width, cin, cout):
    rng = np.random.default_rng([batch, height, width, cin, cout, 1])
    shapes = [(batch, height, width, cin), (3, 3, cin, cout), (cout,),
              (batch, 2 * height, 2 * width, cout)]
    return [tf.constant(rng.normal(size=shape), dtype) for shape in shapes]


@pytest.mark.parametrize("batch,height,width,cin,cout", [
    (3, 5, 7, 3, 5), (1, 1, 1, 2, 1), (2, 4, 4, 1, 7), (5, 2, 6, 4, 3)])
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-13), ("float32", 1e-6)])
def test_upsampled_conv_with_bias_and_activation_equals_the_plain_layers(
        batch, height, width, cin, cout, dtype, tol):
    """The phase conv, with the bias and leaky ReLU applied to the phases before they are
    interleaved, in value and in the gradients of x, the kernel and the bias, against upsampling
    then the 3x3 'same' conv, the bias and the activation."""
    inputs = _bias_leaky_inputs(dtype, batch, height, width, cin, cout)
    fused = _bias_leaky_grads(networks._upsampled_conv3x3_leaky, *inputs)
    plain = _bias_leaky_grads(_plain_conv_bias_leaky, *inputs)
    for name, a, b in zip(["value", "d/dx", "d/dkernel", "d/dbias"], fused, plain):
        _assert_close(a, b, tol, name)


def test_upsampled_conv_with_bias_and_activation_in_bfloat16_is_as_close_as_the_plain_layers():
    """In bfloat16 both computations are far from float64 where a pre-activation rounds across
    the kink (16% of the largest d/dx entry here, for the plain layers too); the fused one may be
    no farther from float64 than the plain layers computed in bfloat16 by TensorFlow."""
    exact = _bias_leaky_grads(_plain_conv_bias_leaky,
                              *_bias_leaky_inputs("float64", 3, 5, 7, 3, 5))
    inputs = _bias_leaky_inputs("bfloat16", 3, 5, 7, 3, 5)
    fused = _bias_leaky_grads(networks._upsampled_conv3x3_leaky, *inputs)
    plain = _bias_leaky_grads(_plain_conv_bias_leaky, *inputs)
    assert all(t.dtype == tf.bfloat16 for t in fused)
    for name, a, b, e in zip(["value", "d/dx", "d/dkernel", "d/dbias"], fused, plain, exact):
        scale = np.abs(e.numpy()).max()
        err = np.abs(tf.cast(a, tf.float64).numpy() - e.numpy()).max() / scale
        err_plain = np.abs(tf.cast(b, tf.float64).numpy() - e.numpy()).max() / scale
        assert err <= 1.25 * err_plain + 0.01, (name, err, err_plain)


def _plain_block(block, x):
    """The block's computation as written before the fusion, on its own sublayers."""
    u = _up(x)
    h = tf.nn.leaky_relu(block.conv1(u), alpha=0.2)
    h = tf.nn.leaky_relu(block.conv2(h), alpha=0.2)
    return h + block.skip(u)


def _randomize(layer, seed):
    rng = np.random.default_rng(seed)
    for v in layer.weights:  # biases too (they start at zero); activations stay O(1)
        scale = 1 / np.sqrt(np.prod(v.shape[:-1])) if len(v.shape) > 1 else 0.3
        v.assign(rng.normal(scale=scale, size=v.shape).astype(np.float32))


@pytest.mark.parametrize("batch,height,width,cin,filters", [(3, 4, 4, 3, 5), (2, 3, 5, 16, 7)])
def test_block_equals_plain_block_in_value_and_gradients(batch, height, width, cin, filters):
    block = networks._ResidualUpBlock(filters)
    x = tf.random.stateless_normal([batch, height, width, cin], seed=[1, cin])
    block(x)
    _randomize(block, cin)
    cotangent = tf.random.stateless_normal([batch, 2 * height, 2 * width, filters], seed=[2, 0])

    def grads(f):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = f(x)
            loss = tf.reduce_sum(y * cotangent)
        return [y, *tape.gradient(loss, [x, *block.trainable_variables])]

    fused, plain = grads(block), grads(lambda x: _plain_block(block, x))
    trained = grads(lambda x: block(x, training=True))  # the path gradients take in training
    names = ["value", "d/dx"] + [v.path for v in block.trainable_variables]
    assert len(names) == 8  # conv1, conv2, skip: kernel and bias each
    for name, a, b, c in zip(names, fused, plain, trained):
        assert a is not None and b is not None and c is not None, name
        _assert_close(a, b, 1e-6, name)
        _assert_close(c, b, 1e-6, name + " (training=True)")


def test_block_variables_are_the_plain_convs():
    block = networks._ResidualUpBlock(6, name="block0")
    block(tf.zeros([1, 2, 2, 3]))
    assert [(v.path, tuple(v.shape)) for v in block.weights] == [
        ("block0/conv1/kernel", (3, 3, 3, 6)), ("block0/conv1/bias", (6,)),
        ("block0/conv2/kernel", (3, 3, 6, 6)), ("block0/conv2/bias", (6,)),
        ("block0/skip/kernel", (1, 1, 3, 6)), ("block0/skip/bias", (6,))]


class _ResidualUpBlock(keras.layers.Layer):
    """`networks._ResidualUpBlock` as it was before the fusion (an UpSampling2D sublayer, the
    convs on its output). Same class name: a weights file names a list's layers by their class."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.up = keras.layers.UpSampling2D(2, interpolation="nearest")
        self.conv1 = networks._conv(filters, name="conv1")
        self.conv2 = networks._conv(filters, name="conv2")
        self.skip = networks._conv(filters, kernel_size=1, name="skip")
        self.filters = filters

    def build(self, input_shape):  # the same variables, built without a warning
        self.conv1.build((None, None, None, input_shape[-1]))
        self.conv2.build((None, None, None, self.filters))
        self.skip.build((None, None, None, input_shape[-1]))

    def call(self, x):
        return _plain_block(self, x)


class _PlainDecoder(keras.layers.Layer):
    def __init__(self, filters, blocks, **kwargs):
        super().__init__(**kwargs)
        self.blocks = [_ResidualUpBlock(filters, name=f"block{i}") for i in range(blocks)]
        self.out = networks._conv(3, "sigmoid", name="out")

    def call(self, q):
        for block in self.blocks:
            q = block(q)
        return self.out(q)


class _Holder(keras.Model):
    def __init__(self, decoder):
        super().__init__(name="holder")
        self.decoder = decoder

    def call(self, q):
        return self.decoder(q)


@pytest.mark.parametrize("direction", ["plain->fused", "fused->plain"])
def test_weights_file_of_either_layout_loads_into_the_other(tmp_path, direction):
    q = tf.random.stateless_normal([3, 2, 2, 5], seed=[3, 3])
    plain = _Holder(_PlainDecoder(7, 2, name="decoder"))
    fused = _Holder(networks.Decoder(7, 2, name="decoder"))
    source, target = (plain, fused) if direction == "plain->fused" else (fused, plain)
    source(q), target(q)
    _randomize(source, 4)
    path = str(tmp_path / "model.weights.h5")
    source.save_weights(path)
    target.load_weights(path)
    assert [v.path for v in target.weights] == [v.path for v in source.weights]
    for a, b in zip(target.weights, source.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    _assert_close(target(q), source(q), 1e-6, "decoder output")


def test_mixed_bfloat16_block_computes_in_bfloat16_close_to_float32():
    x = tf.random.stateless_normal([2, 4, 4, 8], seed=[5, 5])
    full = networks._ResidualUpBlock(8)
    mixed = networks._ResidualUpBlock(8, dtype="mixed_bfloat16")
    full(x), mixed(x)
    _randomize(full, 6)
    mixed.set_weights(full.get_weights())
    assert mixed.conv1.kernel.dtype == "float32"
    y_mixed, y_full = mixed(x), full(x)
    assert y_mixed.dtype == tf.bfloat16
    err = np.abs(tf.cast(y_mixed, tf.float32).numpy() - y_full.numpy()).max()
    assert err <= 0.02 * np.abs(y_full.numpy()).max(), err  # bfloat16: 8 bits of mantissa


@pytest.mark.parametrize("training", [True, False])
def test_training_and_inference_both_decode_fused(training):
    """The training objective goes through the fused decoder too (its gradient is
    `_phase_conv_leaky`'s written-out one, checked against the plain gradients above)."""
    from hgn_tf import config as C
    from hgn_tf.train import build_model

    model = build_model(C.tiny())
    frames = tf.zeros([2, 4, 32, 32, 3])
    graph_def = tf.function(lambda f: model.objective_terms(f, training=training)) \
        .get_concrete_function(frames).graph.as_graph_def()
    # Inference decodes inside the integration loop: its ops are in the loop's functions.
    ops = [n.op for n in graph_def.node]
    ops += [n.op for f in graph_def.library.function for n in f.node_def]
    # The fused path's phases are interleaved by DepthToSpace, one per residual block (in each
    # place the decoder is called: once for training, in the loop's two decoding branches for
    # inference); the plain path has none.
    blocks = len(model.decoder.blocks)
    assert ops.count("DepthToSpace") == (1 if training else 2) * blocks, sorted(set(ops))


def test_phase_conv_gradient_is_the_adjoint_in_bfloat16():
    """The written-out gradient also runs under mixed_bfloat16 (the decoder's hidden convs). A
    bias of 64 keeps every pre-activation positive, so the activation is the identity and no
    rounding across its kink blurs the check of the conv's adjoint."""
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(2, 3, 4, 5)), tf.bfloat16)
    kernel = tf.constant(rng.normal(size=(3, 3, 5, 6)), tf.bfloat16)
    bias = tf.fill([6], tf.constant(64, tf.bfloat16))
    # A random cotangent: a uniform one would not see a kernel flipped the wrong way inside.
    cotangent = tf.constant(rng.normal(size=(2, 6, 8, 6)), tf.bfloat16)
    with tf.GradientTape() as tape:
        tape.watch([x, kernel, bias])
        loss = tf.reduce_sum(networks._upsampled_conv3x3_leaky(x, kernel, bias) * cotangent)
    grads = tape.gradient(loss, [x, kernel, bias])
    assert all(g.dtype == tf.bfloat16 for g in grads)
    x64, k64, b64 = (tf.cast(t, tf.float64) for t in (x, kernel, bias))
    with tf.GradientTape() as tape:
        tape.watch([x64, k64, b64])
        pre = tf.nn.conv2d(_up(x64), k64, 1, "SAME") + b64
        loss64 = tf.reduce_sum(pre * tf.cast(cotangent, tf.float64))
    assert float(tf.reduce_min(pre)) > 0
    for name, g, g64 in zip(["d/dx", "d/dkernel", "d/dbias"], grads,
                            tape.gradient(loss64, [x64, k64, b64])):
        _assert_close(tf.cast(g, tf.float64), g64, 0.02, name)


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_leaky_relu_gradient_from_the_output_is_tensorflows_bit_for_bit(dtype):
    x = tf.constant(np.random.default_rng(0).normal(size=(4, 8, 8, 16)), dtype)
    x = tf.concat([x, tf.zeros_like(x[:1])], axis=0)  # the kink itself
    dy = tf.constant(np.random.default_rng(1).normal(size=x.shape), dtype)
    grads = []
    for fn in (networks._leaky_relu, lambda v: tf.nn.leaky_relu(v, alpha=networks.LEAKY_ALPHA)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        grads.append((y, tape.gradient(y, x, output_gradients=dy)))
    np.testing.assert_array_equal(grads[0][0].numpy(), grads[1][0].numpy())
    np.testing.assert_array_equal(grads[0][1].numpy(), grads[1][1].numpy())
    assert np.any(grads[0][1].numpy() == (networks.LEAKY_ALPHA * dy).numpy())  # both slopes hit


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-15), ("float32", 1e-6), ("bfloat16", 0.02)])
@pytest.mark.parametrize("batch,height,width,channels", [(2, 3, 5, 4), (1, 1, 1, 1)])
def test_add_upsampled_equals_the_broadcast_sum_in_value_and_gradients(
        batch, height, width, channels, dtype, tol):
    """The skip's sum, h + upsample(s), and its written-out gradient (the cotangent pooled over
    each 2x2 cell) against the upsampled sum differentiated by TensorFlow, in float64."""
    rng = np.random.default_rng([batch, height, width, channels])
    h = tf.constant(rng.normal(size=(batch, 2 * height, 2 * width, channels)), dtype)
    s = tf.constant(rng.normal(size=(batch, height, width, channels)), dtype)
    cotangent = tf.constant(rng.normal(size=h.shape), dtype)
    with tf.GradientTape() as tape:
        tape.watch([h, s])
        out = networks._add_upsampled(h, s)
        loss = tf.reduce_sum(out * cotangent)
    dh, ds = tape.gradient(loss, [h, s])
    assert out.dtype == ds.dtype == tf.as_dtype(dtype)
    h64, s64, c64 = (tf.cast(t, tf.float64) for t in (h, s, cotangent))
    with tf.GradientTape() as tape:
        tape.watch([h64, s64])
        out64 = h64 + _up(s64)
        loss64 = tf.reduce_sum(out64 * c64)
    dh64, ds64 = tape.gradient(loss64, [h64, s64])
    for name, a, b in [("value", out, out64), ("d/dh", dh, dh64), ("d/ds", ds, ds64)]:
        _assert_close(tf.cast(a, tf.float64), b, tol, name)
