"""The hardware floor beside a figure: FLOPs from TensorFlow's graph profiler over a measured peak.

    from floor import gflops, conv_peak_gflops, rollout_gflops

`gflops(concrete_function)` counts the floating-point operations TensorFlow's own profiler
(`tf.compat.v1.profiler`, float_operation) assigns to a traced graph; it counts a `tf.while_loop`
body once, so loops are counted per iteration by the callers. `conv_peak_gflops()` measures the
rate this machine reaches on the HGN's dominant operation (a 3x3, 64 -> 64 channel convolution at
32x32, forward and backward, 256 images): the floor of a part is its FLOPs over that rate.
"""

from __future__ import annotations

import statistics
import time

import tensorflow as tf

__all__ = ["gflops", "conv_peak_gflops", "median_time", "rollout_gflops", "step_gflops"]


def median_time(fn, repeats: int, warmup: int = 1) -> float:
    """Median seconds of `fn()` (its tensors fetched to numpy) over `repeats` calls."""
    fetch = lambda out: tf.nest.map_structure(  # noqa: E731
        lambda t: t.numpy() if hasattr(t, "numpy") else t, out)
    for _ in range(warmup):
        fetch(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fetch(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gflops(concrete) -> float:
    """GFLOP of one run of a concrete function's graph (loop bodies counted once)."""
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    return tf.compat.v1.profiler.profile(graph=concrete.graph, options=opts).total_float_ops / 1e9


def conv_peak_gflops(repeats: int = 5, dtype=tf.float32) -> float:
    """GFLOP/s of a 3x3 64 -> 64 convolution at 32x32 on 256 images, forward + backward, in
    `dtype` (tf.bfloat16: the rate of the hardware's bfloat16 units, where it has them)."""
    x = tf.cast(tf.random.stateless_normal([256, 32, 32, 64], seed=[1, 2]), dtype)
    kernel = tf.Variable(tf.cast(tf.random.stateless_normal([3, 3, 64, 64], seed=[3, 4]) * 0.05,
                                 dtype))

    @tf.function
    def forward_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(tf.square(tf.cast(tf.nn.conv2d(x, kernel, 1, "SAME"), tf.float32)))
        return tape.gradient(y, [x, kernel])

    flops = gflops(forward_backward.get_concrete_function(tf.TensorSpec(x.shape, dtype)))
    return flops / median_time(lambda: forward_backward(x), repeats)


def rollout_gflops(model, batch: int, n_steps: int, with_energy: bool = True) -> float:
    """GFLOP of `model.rollout` of `batch` sequences and `n_steps` frames (forward only):
    the encoder, n_steps - 1 integrator steps (one step's graph, counted n_steps - 1 times),
    the decoder on every frame and, `with_energy`, the learned H on every state."""
    r = model.resolution
    k = model.conditioning_frame_count
    frames = tf.TensorSpec([batch, k, r, r, 3], tf.float32)
    states = tf.TensorSpec([batch * n_steps, *model.state_shape], tf.float32)
    total = gflops(tf.function(lambda x: model.encode(x)[:2]).get_concrete_function(frames))
    if model.hamiltonian_net is not None and with_energy:
        total += gflops(tf.function(model.hamiltonian).get_concrete_function(states, states))
    total += (n_steps - 1) * step_gflops(model, batch)[0]
    total += gflops(tf.function(model.decoder).get_concrete_function(states))
    return total


def step_gflops(model, batch: int) -> tuple[float, float]:
    """GFLOP of one step of `model.integrate`'s loop body (what every step after the first costs,
    a carried first-same-as-last gradient included), forward and forward + backward (the gradient
    of a scalar of the new state with respect to the old state, the carry and H's weights)."""
    dt = model.config.dt
    zeros = tf.zeros([batch, *model.state_shape])
    if model.hamiltonian_net is None:
        net = model.dynamics_net

        def body(q, p):
            dq, dp = net(q, p)
            return q + dt * dq, p + dt * dp, ()
        carry, variables = (), net.trainable_variables
    else:
        h, integ = model.hamiltonian_net, model.integrator
        carry, variables = integ._initial_carry(h, zeros, zeros), h.trainable_variables
        body = lambda q, p, *c: integ._step_with_carry(h, q, p, dt, tuple(c))  # noqa: E731

    def forward_backward(q, p, *c):
        with tf.GradientTape() as tape:
            tape.watch([q, p, *c])
            q1, p1, c1 = body(q, p, *c)
            y = tf.reduce_sum(tf.square(q1)) + tf.reduce_sum(tf.square(p1))
        return tape.gradient(y, [q, p, *c, *variables])

    specs = [tf.TensorSpec(zeros.shape)] * 2 + [tf.TensorSpec(t.shape) for t in carry]
    return (gflops(tf.function(body).get_concrete_function(*specs)),
            gflops(tf.function(forward_backward).get_concrete_function(*specs)))
