"""The HGN's networks (HGN appendix A.1; [Re] HGN section 3.1) as Keras layers.

Shapes (paper, 32x32): frames [B, k, 32, 32, 3] -> encoder -> z [B, 32, 32, 48]
-> f_psi -> s0 = (q0, p0), each [B, 4, 4, 16] -> Hamiltonian net H(q, p) -> [B]
-> decoder(q_t) -> [B, 32, 32, 3].

Open choices of the paper, decided here (and why):
  * Encoder: the k frames are stacked on the channel axis; 3x3 convs with ReLU, filters
    `encoder_filters` (paper: 32 then 64 x 6), then a linear 3x3 conv to 2 * z_channels (the
    posterior mean and log-variance of z, 48 channels each at full resolution: 8 layers in all).
  * f_psi: log2(resolution / state_size) 3x3 convs of stride 2 (3 for 32 -> 4), ReLU on the hidden
    ones, and NO ReLU on the output: the public PyTorch code's final ReLU forces q, p >= 0, which
    halves the phase space the dynamics can use.
  * "no f_psi": the posterior is over s0 itself; the same strided stack then belongs to the
    encoder (deterministic features -> mean and log-variance of s0).
  * Hamiltonian net: separable by default, H = K(p) + V(q) (HGN 3.2 assumes a separable H, and
    only then are the explicit leapfrog/Yoshida steps symplectic); each term is
    `hamiltonian_layers` 3x3 convs of `hamiltonian_filters` with Softplus (its second derivatives
    are trained; ReLU's vanish), then a linear Dense to one scalar without bias. No Softplus on
    the scalar: energies are defined up to a constant, a bound adds nothing.
  * Decoder: log2(resolution / state_size) residual blocks (3 for 32x32, 4 for 64x64): nearest x2
    upsampling, two 3x3 convs with leaky ReLU, plus a 1x1-projected skip of the upsampled input;
    a final 3x3 conv to 3 channels and ONE sigmoid at the output. The paper's "sigmoid in each
    block" would squash the residual stream between blocks; we keep it only where the pixels
    need [0, 1].
    Computed fused, with the same variables: the upsampled image is piecewise constant on 2x2
    cells, so (1) the 1x1 skip commutes with the upsampling (project, then upsample: 4x fewer
    products), and (2) the first 3x3 'same' conv of u = up(x) is, for each output phase
    (y mod 2, x mod 2), a 2x2 conv of the low-resolution x zero-padded by one, whose taps are
    sums of the 3x3 taps (`_upsampled_conv3x3_leaky`); the four phases are one VALID conv with
    4x the output channels, interleaved by depth_to_space. Exact: the same products, summed in
    another order (the zero pad of u is the upsampled zero pad of x). Per block of input
    H x H x C and F filters, multiply-adds
        plain:  9 C F (2H)^2  +  9 F^2 (2H)^2  +  C F (2H)^2
        fused: 16 C F (H+1)^2 +  9 F^2 (2H)^2  +  C F H^2
    (the second conv reads the non-constant h and is unchanged). Paper preset (C = 16, 64, 64;
    H = 4, 8, 16; F = 64; output conv 9 * 64 * 3 * 32^2): 104.4 -> 77.3 M multiply-adds per
    frame, 100.2 -> 74.2 GFLOP forward for the 480 frames of a training batch.
  * Direct dynamics ("integrator modelling", [Re] HGN): a conv net with the Hamiltonian net's
    shape whose output is (dq/dt, dp/dt) directly; no energy, no gradient.
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["Encoder", "Transformer", "HamiltonianNet", "Decoder", "DirectDynamics",
           "VectorEncoder", "VectorTransformer", "VectorDecoder"]


def _conv(filters, activation=None, strides=1, kernel_size=3, name=None, dtype=None):
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", activation=activation, name=name,
        dtype=dtype,
    )


class Encoder(keras.layers.Layer):
    """Stacked frames [B, k, H, W, 3] -> features [B, H', W', out_channels].

    With `downsample_blocks` > 0 the output is at resolution H / 2**blocks (the "no f_psi"
    variant, where the posterior is over the state itself).

    `dtype` (a Keras dtype policy, e.g. "mixed_bfloat16") applies to the hidden convolutions; the
    output convolution (the posterior's parameters) always computes in float32.
    """

    def __init__(self, filters, out_channels, downsample_blocks=0, downsample_filters=64, **kwargs):
        super().__init__(**kwargs)
        policy = self.dtype_policy
        self.convs = [_conv(f, "relu", name=f"conv{i}", dtype=policy)
                      for i, f in enumerate(filters)]
        self.down = [
            _conv(downsample_filters, "relu", strides=2, name=f"down{i}", dtype=policy)
            for i in range(downsample_blocks)
        ]
        self.out = _conv(out_channels, name="out", dtype="float32")

    def call(self, frames):
        shape = tf.shape(frames)
        k, c = frames.shape[1], frames.shape[-1]
        # [B, k, H, W, 3] -> [B, H, W, k*3], frame-major channel order.
        x = tf.transpose(frames, [0, 2, 3, 1, 4])
        x = tf.reshape(x, [shape[0], shape[2], shape[3], k * c])
        for layer in self.convs + self.down:
            x = layer(x)
        return self.out(x)


class Transformer(keras.layers.Layer):
    """f_psi: z [B, H, W, c] -> s0 [B, S, S, 2L] by `blocks` stride-2 convs (no output ReLU)."""

    def __init__(self, filters, state_channels, blocks, **kwargs):
        super().__init__(**kwargs)
        self.hidden = [
            _conv(filters, "relu", strides=2, name=f"conv{i}") for i in range(blocks - 1)
        ]
        self.out = _conv(state_channels, strides=2, name="out")

    def call(self, z):
        for layer in self.hidden:
            z = layer(z)
        return self.out(z)


def _softplus_layers(filters, layers, dense):
    """`layers` Softplus convs (3x3) or, `dense`, Softplus dense layers of `filters` units."""
    if dense:
        return [keras.layers.Dense(filters, "softplus", name=f"dense{i}") for i in range(layers)]
    return [_conv(filters, "softplus", name=f"conv{i}") for i in range(layers)]


class _EnergyNet(keras.layers.Layer):
    """x [B, S, S, c] (or [B, c], `dense`) -> scalar [B]: Softplus convs (or an MLP), flatten,
    linear head without bias."""

    def __init__(self, filters, layers, dense=False, **kwargs):
        super().__init__(**kwargs)
        self.convs = _softplus_layers(filters, layers, dense)
        self.flatten = keras.layers.Flatten()
        # No bias: a constant energy offset has no gradient in q or p, so nothing could train it.
        self.head = keras.layers.Dense(1, use_bias=False, name="head")

    def call(self, x):
        for layer in self.convs:
            x = layer(x)
        return tf.squeeze(self.head(self.flatten(x)), axis=-1)


class HamiltonianNet(keras.layers.Layer):
    """H_gamma(q, p): q, p [B, S, S, L] -> energy [B].

    separable=True (default):  H(q, p) = K(p) + V(q), two Softplus conv nets. HGN section 3.2:
        "we assume a separable Hamiltonian, so in practice we use a more sophisticated leapfrog
        integrator"; only for separable H are the explicit leapfrog and Yoshida schemes
        symplectic, time-reversible and of their declared order (2 and 4).
    separable=False:  one conv net over concat(q, p) (the public reproduction's form). The
        explicit leapfrog/Yoshida steps are then first order and neither symplectic nor exactly
        reversible (see `hgn_tf.integrators`).
    """

    def __init__(self, filters, layers, separable=True, dense=False, **kwargs):
        super().__init__(**kwargs)
        self.separable = separable
        if separable:
            self.kinetic = _EnergyNet(filters, layers, dense, name="kinetic")
            self.potential = _EnergyNet(filters, layers, dense, name="potential")
        else:
            self.energy = _EnergyNet(filters, layers, dense, name="energy")

    def call(self, q, p):
        if self.separable:
            return self.kinetic(p) + self.potential(q)
        return self.energy(tf.concat([q, p], axis=-1))


class DirectDynamics(keras.layers.Layer):
    """(q, p) -> (dq/dt, dp/dt) predicted directly ([Re] HGN "integrator modelling"); by convs
    on a spatial state, or by an MLP on a vector state (`dense`)."""

    def __init__(self, filters, layers, latent_channels, dense=False, **kwargs):
        super().__init__(**kwargs)
        self.convs = _softplus_layers(filters, layers, dense)
        self.out = (keras.layers.Dense(2 * latent_channels, name="out") if dense
                    else _conv(2 * latent_channels, name="out"))
        self.latent_channels = latent_channels

    def call(self, q, p):
        x = tf.concat([q, p], axis=-1)
        for layer in self.convs:
            x = layer(x)
        x = self.out(x)
        return x[..., : self.latent_channels], x[..., self.latent_channels :]


def _phase_taps(kernel, axis):
    """Split a 3-tap axis of `kernel` into the 2-tap kernels of the two output phases.

    On a nearest-x2 upsampled input u[y] = x[y // 2] (zero outside), the 3-tap 'same' filter
    sum_d k[d] u[y + d - 1] reads, for y = 2i + a:
        a = 0:  x[i - 1] k[0] + x[i] (k[1] + k[2])
        a = 1:  x[i] (k[0] + k[1]) + x[i + 1] k[2]
    i.e. a 2-tap VALID filter on x padded by one: (k[0], k[1] + k[2]) at (i - 1, i) for a = 0 and
    (k[0] + k[1], k[2]) at (i, i + 1) for a = 1. Returns them in slot order (a = 1, a = 0), each
    with `axis` of length 2 (see `_upsampled_conv3x3_leaky` for why that order).
    """
    k0, k1, k2 = tf.unstack(kernel, 3, axis=axis)
    return tf.stack([k0 + k1, k2], axis=axis), tf.stack([k0, k1 + k2], axis=axis)


def _upsampled_conv3x3_leaky(x, kernel, bias):
    """leaky_relu(conv3x3_same(upsample_nearest_x2(x), kernel) + bias), computed at x's
    resolution: the first conv of a decoder block.

    x [B, H, W, C], kernel [3, 3, C, F], bias [F] -> [B, 2H, 2W, F], equal to the reference up
    to float rounding (the taps are summed before the products instead of after).

    Each output pixel (2i + a, 2j + b) is a 2x2 filter (`_phase_taps` on rows, then columns) on
    x zero-padded by one. The zero padding is the same: the 'same' conv's pad pixel at high-res
    row -1 (or 2H) is the nearest upsampling of low-res pad row -1 (or H). The four phases are
    one VALID conv with 4F output channels on the padded x, [B, H + 1, W + 1, 4F]: its pixel
    (i, j) in phase (a, b) is output pixel (2i - a, 2j - b). With phase (a, b) in channel slot
    (1 - a, 1 - b), depth_to_space puts it at (2i + 1 - a, 2j + 1 - b): the output shifted by
    one pixel, so a crop of one pixel on each side gives it. The bias and the activation are
    applied to the four phases before they are interleaved: both are per-pixel and
    per-channel, so they commute with depth_to_space and the crop, and oneDNN fuses them into
    the convolution instead of two more passes over the 2H x 2W image.

    Cost: 16 C F (H + 1)(W + 1) multiply-adds instead of 36 C F H W (0.56x at H = W = 8,
    0.50x at 16).
    """
    return _phase_conv_leaky(x, _phase_kernel(kernel), tf.tile(bias, [4]))


def _phase_kernel(kernel):
    """The 3x3 kernel [3, 3, C, F] -> the phase conv's [2, 2, C, 4F]
    (`_upsampled_conv3x3_leaky`)."""
    rows = _phase_taps(kernel, 0)
    phases = [k for r in rows for k in _phase_taps(r, 1)]  # slots (s, t) in row-major order
    return tf.concat(phases, axis=-1)


_PAD1 = [[0, 0], [1, 1], [1, 1], [0, 0]]


@tf.custom_gradient
def _phase_conv_leaky(x, fused, bias4):
    """The four phase convs of `_upsampled_conv3x3_leaky`: x [B, H, W, C] padded by one, a VALID
    2x2 conv with `fused` [2, 2, C, 4F], + bias4 [4F], leaky ReLU, depth_to_space, the
    one-pixel crop -> [B, 2H, 2W, F].

    The gradient is written out, because TensorFlow's own (Conv2DBackpropInput for this shape,
    and the gradients of the crop and of depth_to_space) made the fused decoder's backward
    slower than the plain one's (bench/README). For the output cotangent g, padded back,
    space_to_depth'd and taken through the activation (read from its output, as `_leaky_relu`
    does) to gy [B, H + 1, W + 1, 4F]: d/dx is the full correlation of gy with the kernel
    flipped in space and transposed in channels, cropped by one pixel on each side, which is a
    forward VALID conv of gy itself (no padding, no crop: output pixel i reads gy[i] and
    gy[i + 1]); d/dfused is Conv2DBackpropFilter of the padded x against gy; d/dbias4 is
    BiasAddGrad of gy. All are the exact adjoints of the forward (tests/test_decoder_fused.py
    checks them against the plain computation's gradients in float64).
    """
    xp = tf.pad(x, _PAD1)
    z = tf.nn.leaky_relu(tf.nn.bias_add(tf.nn.conv2d(xp, fused, 1, "VALID"), bias4),
                         alpha=LEAKY_ALPHA)  # [B, H + 1, W + 1, 4F]
    shape = tf.shape(x)
    out = tf.nn.depth_to_space(z, 2)[:, 1 : 2 * shape[1] + 1, 1 : 2 * shape[2] + 1, :]

    def grad(g):
        gy = tf.nn.space_to_depth(tf.pad(g, _PAD1), 2)  # [B, H + 1, W + 1, 4F]
        gy = tf.raw_ops.LeakyReluGrad(gradients=gy, features=z, alpha=LEAKY_ALPHA)
        flipped = tf.transpose(tf.reverse(fused, [0, 1]), [0, 1, 3, 2])  # [2, 2, 4F, C]
        dx = tf.nn.conv2d(gy, flipped, 1, "VALID")  # [B, H, W, C]
        dfused = tf.compat.v1.nn.conv2d_backprop_filter(xp, tf.shape(fused), gy, [1, 1, 1, 1],
                                                        "VALID")
        return dx, dfused, tf.raw_ops.BiasAddGrad(out_backprop=gy)

    return out, grad


LEAKY_ALPHA = 0.2


@tf.custom_gradient
def _leaky_relu(x):
    """leaky_relu(x, 0.2), its gradient read from the OUTPUT.

    For alpha > 0 the output is positive exactly where the input is, so
    LeakyReluGrad(dy, features=y) equals TensorFlow's own gradient, LeakyReluGrad(dy, features=x),
    bit for bit. TensorFlow's reads the input, the conv's BiasAdd; that second consumer of the
    BiasAdd makes Grappler's remapper fail on the whole training graph ("remapper failed:
    INVALID_ARGUMENT: Mutation::Apply error: fanout ... LeakyReluGrad exist for missing node
    ... BiasAdd") and drop every fusion it would have made (conv + bias + activation among
    them). Reading the output leaves the BiasAdd one consumer, so the error is gone and the
    conv, its bias and the activation may fuse. The paper-preset training step did not get
    measurably faster for it (bench/README.md, 2026-12-07); the logs lost a misleading error.
    """
    y = tf.nn.leaky_relu(x, alpha=LEAKY_ALPHA)

    def grad(dy):
        return tf.raw_ops.LeakyReluGrad(gradients=dy, features=y, alpha=LEAKY_ALPHA)

    return y, grad


@tf.custom_gradient
def _add_upsampled(h, s):
    """h + upsample_nearest_x2(s): h [B, 2H, 2W, F], s [B, H, W, F] -> [B, 2H, 2W, F].

    The sum broadcasts s over each 2x2 cell of h (no upsampled copy of s is formed). Its gradient
    with respect to s, the cotangent summed over each cell, is written out as a 2x2 average pool
    times 4 (exact: both scalings are by powers of two). TensorFlow's own gradient of the
    broadcast, a reduce_sum over the two non-adjacent cell axes of [B, H, 2, W, 2, F] plus a
    StridedSliceGrad for the inserted axes, took 10x as long (154 against 13 ms at the paper
    preset's 480 frames of 32x32x64): 0.35 s of a 2.5 s training step (bench/README.md).
    """
    shape = tf.shape(s)
    b, hh, ww, f = shape[0], shape[1], shape[2], shape[3]
    cells = tf.reshape(h, [b, hh, 2, ww, 2, f]) + tf.reshape(s, [b, hh, 1, ww, 1, f])
    out = tf.reshape(cells, tf.shape(h))

    def grad(g):
        return g, tf.nn.avg_pool2d(g, 2, 2, "VALID") * tf.constant(4, g.dtype)

    return out, grad


class _ResidualUpBlock(keras.layers.Layer):
    """x [B, H, W, C] -> [B, 2H, 2W, filters]: with u = upsample_nearest_x2(x),

        h = leaky(conv2(leaky(conv1(u))));  out = h + skip(u)

    computed without forming the upsampled conv input: leaky(conv1(u)) by
    `_upsampled_conv3x3_leaky` (4 taps per output pixel instead of 9; the bias and activation on
    the phases, before they are interleaved) and skip(u) = upsample(skip(x)) (a 1x1 conv
    commutes with nearest upsampling: 4x fewer products), added by broadcasting over each 2x2
    cell (`_add_upsampled`, whose gradient is a 2x2 pool). Exact up
    to float rounding; the variables (conv1 3x3, conv2 3x3, skip 1x1, each with its bias) are
    those of the plain computation, so weights saved by either load into the other. Keep the
    class name: a Keras weights file names the layers of `Decoder.blocks` (a list) by it.

    Training and inference both compute fused. TensorFlow's own gradient of the fused conv
    made the decoder's forward + backward slower than the plain one's (1.44 -> 1.74 s per
    paper training step on the earlier machine, bench/README), so `_phase_conv_leaky` writes its
    gradient out; with it the fused decoder's forward + backward is 0.90-0.94x the plain
    one's (on the AVX2 AMD EPYC of bench/README). Both give the same values and gradients to
    float rounding (tests/test_decoder_fused.py). `training` is accepted for Keras and ignored.
    """

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        policy = self.dtype_policy
        self.filters = filters
        self.conv1 = _conv(filters, name="conv1", dtype=policy)
        self.conv2 = _conv(filters, name="conv2", dtype=policy)
        self.skip = _conv(filters, kernel_size=1, name="skip", dtype=policy)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.conv1.build((None, None, None, channels))  # its kernel and bias are used directly
        self.conv2.build((None, None, None, self.filters))
        self.skip.build((None, None, None, channels))

    def call(self, x, training=None):
        dtype = self.compute_dtype
        h = _upsampled_conv3x3_leaky(x, tf.cast(self.conv1.kernel, dtype),
                                     tf.cast(self.conv1.bias, dtype))
        h = _leaky_relu(self.conv2(h))
        return _add_upsampled(h, self.skip(x))


class Decoder(keras.layers.Layer):
    """q [B, S, S, L] -> image [B, S * 2**blocks, S * 2**blocks, 3] in [0, 1].

    `dtype` (a Keras dtype policy, e.g. "mixed_bfloat16") applies to the residual blocks; the
    output convolution and its sigmoid compute in float32.
    """

    def __init__(self, filters, blocks, **kwargs):
        super().__init__(**kwargs)
        self.blocks = [_ResidualUpBlock(filters, name=f"block{i}", dtype=self.dtype_policy)
                       for i in range(blocks)]
        self.out = _conv(3, "sigmoid", name="out", dtype="float32")

    def call(self, q, training=None):
        x = q
        for block in self.blocks:
            x = block(x, training=training)
        return self.out(x)


# ------------------------------------------------------------------------- vector latent state
# HGN++ (Botev et al. 2021, DeepMind's physics_inspired_models): the state is a vector
# (q, p in R^d) and the Hamiltonian an MLP (`HamiltonianNet(dense=True)`); the convolutional
# encoder and decoder stay.


def _mlp(units, layers, out, activation, name):
    hidden = [keras.layers.Dense(units, activation, name=f"{name}{i}") for i in range(layers)]
    return hidden, keras.layers.Dense(out, name=f"{name}_out")


class VectorEncoder(keras.layers.Layer):
    """Frames [B, k, H, W, 3] -> [B, out_dim]: `Encoder` down to S x S, then a linear map."""

    def __init__(self, filters, out_dim, downsample_blocks, downsample_filters, **kwargs):
        super().__init__(**kwargs)
        self.conv = Encoder(filters, downsample_filters, downsample_blocks=downsample_blocks,
                            downsample_filters=downsample_filters, name="conv",
                            dtype=self.dtype_policy)
        self.flatten = keras.layers.Flatten()
        self.out = keras.layers.Dense(out_dim, name="out")

    def call(self, frames):
        return self.out(self.flatten(tf.nn.relu(self.conv(frames))))


class VectorTransformer(keras.layers.Layer):
    """f_psi: z [B, z_dim] -> s0 [B, 2d] by an MLP (ReLU hidden layers)."""

    def __init__(self, units, layers, state_dim, **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.out = _mlp(units, layers, state_dim, "relu", "dense")

    def call(self, z):
        for layer in self.hidden:
            z = layer(z)
        return self.out(z)


class VectorDecoder(keras.layers.Layer):
    """q [B, d] -> image: a linear map to [S, S, filters], then `Decoder`'s upsampling blocks."""

    def __init__(self, filters, blocks, state_size, **kwargs):
        super().__init__(**kwargs)
        self.state_size, self.filters = state_size, filters
        self.dense = keras.layers.Dense(state_size * state_size * filters, name="dense")
        self.conv = Decoder(filters, blocks, name="conv", dtype=self.dtype_policy)

    def call(self, q, training=None):
        x = self.dense(q)
        x = tf.reshape(x, [-1, self.state_size, self.state_size, self.filters])
        return self.conv(x, training=training)
