"""Integrators for Hamilton's equations, with both time derivatives taken from the Hamiltonian.

Hamilton's equations for a state (q, p) and a Hamiltonian H(q, p):

    dq/dt = +dH/dp(q, p)
    dp/dt = -dH/dq(q, p)

Every integrator here takes BOTH derivatives from `hamiltonian` by automatic differentiation:
dq/dt comes from dH/dp, never from p itself. (The public PyTorch reproduction of HGN moved q by
p in its leapfrog and Yoshida steps, which is only right for H = p^2/2 + V(q), and evaluated its
RK4's fourth stage at a half step: Balsells Rodas, Canal and Taschin, "[Re] Hamiltonian Generative
Networks", ReScience C 7(2), 2021, and the open issue on its code. The schemes themselves:
Hairer, Lubich and Wanner, "Geometric Numerical Integration", 2nd ed., Springer 2006, sections
II.1 and II.4 (Stormer-Verlet and compositions); Yoshida, "Construction of higher order
symplectic integrators", Phys. Lett. A 150, 1990.)

Integrators are data, in the style of diffrax:

- `ExplicitRungeKutta`: a Butcher tableau (c, A, b) checked on construction (rows of A sum to c;
  the classical order conditions hold up to the declared `order`, and fail at `order + 1`),
  with one generic stepper. Instances: "euler" (order 1), "rk4" (order 4). Neither is
  symplectic: the energy drifts over long rollouts.
- `SymplecticComposition`: a palindromic composition of kick-drift-kick Stormer-Verlet (leapfrog)
  sub-steps of sizes w_i dt, weights checked on construction (they sum to 1; sum w_i^3 = 0 for
  order 4), with one generic stepper. Instances: "leapfrog" (weights (1,), order 2) and
  "yoshida" (Yoshida 1990 triple jump, order 4).

Separable vs non-separable Hamiltonians. Leapfrog and Yoshida are exactly symplectic (volume
preserving, det(Jacobian) = 1), time-reversible, have bounded energy error, and reach their
declared order ONLY for separable H = T(p) + V(q). For a non-separable H (H_qp != 0) these explicit
schemes are approximations: they are neither symplectic nor reversible, and their local error
contains an O(dt^2) term proportional to H_qp, so they are only first order. HGN (section 3.2)
assumes a separable H, and so does this library's Hamiltonian network by default
(`ModelConfig.separable_hamiltonian=True`: H = K(p) + V(q)); with a non-separable network the
guarantees above hold only approximately. The exact alternative for non-separable H (implicit
generalised leapfrog) is not provided.

The step of every integrator works inside an outer `tf.GradientTape` (second-order gradients reach
the Hamiltonian's variables: the inner tape is neither persistent nor stopped), inside
`tf.function` and inside a `tf.while_loop` body. `integrate` runs many steps in a
`tf.while_loop`, so the traced graph does not grow with the number of steps.

Example:

    integ = integrators.get("leapfrog")
    q1, p1 = integ.step(hamiltonian, q, p, dt=0.125)
    qs, ps = integrators.integrate(integ, hamiltonian, q, p, dt=0.125, n_steps=30)

References:
    Hairer, Lubich, Wanner. Geometric Numerical Integration, 2nd ed., Springer 2006
        (II.1 order conditions, II.4 composition methods, VI symplecticity).
    Yoshida. Construction of higher order symplectic integrators. Phys. Lett. A 150, 1990.
    Kidger. diffrax, numerical differential equation solvers in JAX
        (github.com/patrick-kidger/diffrax): solvers as coefficient tables.
    Toth et al. Hamiltonian Generative Networks. ICLR 2020, appendix A.6.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable

import tensorflow as tf

from hgn_tf.errors import ConfigError, non_negative_int, positive_int

__all__ = [
    "NAMES",
    "ButcherTableau",
    "ExplicitRungeKutta",
    "Hamiltonian",
    "Integrator",
    "SeparableHamiltonian",
    "SymplecticComposition",
    "get",
    "integrate",
    "vector_field",
    "xla_steps",
]

# H(q, p) -> one energy per sample, shape [B], for q, p of shape [B, ...].
Hamiltonian = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]

# Coefficient checks are on python floats; this tolerance only absorbs rounding of the literals.
_COEFFICIENT_ATOL = 1e-12


def _energy_gradients(hamiltonian: Hamiltonian, q: tf.Tensor, p: tf.Tensor, wrt: str):
    """dH/dq and/or dH/dp of sum_b H(q, p)_b, from one non-persistent tape and one gradient call.

    Samples are independent, so the gradient of the batch sum is the per-sample gradient. The
    tape is created here and is not persistent; an enclosing tape records the gradient
    computation, so derivatives of the result with respect to the Hamiltonian's variables
    (second-order derivatives of H) are available to the caller.

    Args:
        hamiltonian: callable H(q, p) -> energies, one per sample.
        q, p: tensors of shape [B, ...].
        wrt: "q" (returns dH/dq), "p" (returns dH/dp) or "qp" (returns (dH/dq, dH/dp)).
    """
    sources = {"q": [q], "p": [p], "qp": [q, p]}[wrt]
    with tf.GradientTape() as tape:
        tape.watch([q, p])
        energy = tf.reduce_sum(hamiltonian(q, p))
    grads = tape.gradient(energy, sources, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return grads[0] if len(grads) == 1 else tuple(grads)


class SeparableHamiltonian:
    """H(q, p) = K(p) + V(q), given as its two terms.

    Any callable H with attributes `separable = True`, `kinetic` (p -> [B]) and `potential`
    (q -> [B]) is treated as separable by the symplectic compositions (this class, and
    `hgn_tf.networks.HamiltonianNet(separable=True)`). They then differentiate only the term a
    sub-step needs (dH/dq = dV/dq, dH/dp = dK/dp: the other term's forward pass is skipped), and a
    kick reuses the dV/dq of the previous drift's end point (first-same-as-last), so a leapfrog
    step costs one dV/dq and one dK/dp instead of three gradients of K + V. The numbers are the
    ones the general path computes: the same gradients of the same terms, not a different scheme.

    Args:
        kinetic: K(p) -> one energy per sample.
        potential: V(q) -> one energy per sample.
    """

    separable = True

    def __init__(self, kinetic: Callable, potential: Callable):
        self.kinetic = kinetic
        self.potential = potential

    def __call__(self, q, p):
        return self.kinetic(p) + self.potential(q)


def _separable_terms(hamiltonian, q=None, p=None):
    """(K, V) if `hamiltonian` declares itself separable (see `SeparableHamiltonian`), else None.

    An unbuilt Keras layer (`built` False) is called once on (q, p) first, so that its weights are
    created under its own name (a term called on its own first would name them without it).
    """
    if getattr(hamiltonian, "separable", False) is True:
        if getattr(hamiltonian, "built", True) is False and q is not None:
            hamiltonian(q, p)
        kinetic = getattr(hamiltonian, "kinetic", None)
        potential = getattr(hamiltonian, "potential", None)
        if callable(kinetic) and callable(potential):
            return kinetic, potential
    return None


def _term_gradient(term: Callable, x: tf.Tensor) -> tf.Tensor:
    """d/dx of sum_b term(x)_b (one term of a separable H), as `_energy_gradients` takes it."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        energy = tf.reduce_sum(term(x))
    return tape.gradient(energy, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)


def vector_field(hamiltonian: Hamiltonian, q: tf.Tensor, p: tf.Tensor):
    """Hamilton's vector field (dq/dt, dp/dt) = (dH/dp, -dH/dq), both from `hamiltonian`.

    Both partial derivatives come from one `tf.GradientTape.gradient` call on sum_b H(q, p)_b.
    A Hamiltonian that does not depend on q (or p) gets a zero derivative, not None.

    Args:
        hamiltonian: callable H(q, p) returning one energy per sample (shape [B]).
        q, p: tensors of shape [B, ...] (any trailing shape), same dtype.

    Returns:
        (dH/dp, -dH/dq), each shaped like q.
    """
    dh_dq, dh_dp = _energy_gradients(hamiltonian, q, p, "qp")
    return dh_dp, -dh_dq


def _prepare(q, p, dt):
    """Converts q, p to tensors of one floating dtype and casts dt to it."""
    q = tf.convert_to_tensor(q)
    if not q.dtype.is_floating:
        raise TypeError(f"q must be a floating-point tensor, got dtype {q.dtype.name}.")
    p = tf.convert_to_tensor(p)
    if p.dtype != q.dtype:
        raise TypeError(
            f"q and p must have the same dtype, got q: {q.dtype.name}, p: {p.dtype.name}."
        )
    # dtype_hint first: tf.cast(0.1, tf.float64) would round 0.1 to float32 on the way.
    return q, p, tf.cast(tf.convert_to_tensor(dt, dtype_hint=q.dtype), q.dtype)


class Integrator(abc.ABC):
    """A one-step map (q, p) -> (q1, p1) of Hamilton's equations over a time step dt.

    Attributes:
        name: registry name, e.g. "leapfrog".
        order: global order of accuracy (the error at a fixed time is O(dt^order)). For the
            symplectic compositions it holds for separable H = T(p) + V(q).
        symplectic: True when the step map is symplectic for separable H.
    """

    name: str
    order: int
    symplectic: bool

    def step(self, hamiltonian: Hamiltonian, q, p, dt):
        """Advances (q, p) by dt (negative dt integrates backward).

        Args:
            hamiltonian: callable H(q, p) returning one energy per sample, shape [B].
            q, p: tensors of shape [B, ...], float32 or float64, the same dtype.
            dt: python float or scalar tensor, cast to q.dtype.

        Returns:
            (q1, p1), shaped and typed like (q, p).
        """
        q, p, dt = _prepare(q, p, dt)
        return self._step(hamiltonian, q, p, dt)

    @abc.abstractmethod
    def _step(self, hamiltonian, q, p, dt):
        """The update on tensors already converted by `step`."""

    # A rollout may carry values from one step to the next (the symplectic compositions carry
    # dV/dq of a separable H). The default carries nothing.
    def _initial_carry(self, hamiltonian, q, p):
        return ()

    def _step_with_carry(self, hamiltonian, q, p, dt, carry):
        q, p = self._step(hamiltonian, q, p, dt)
        return q, p, carry


@dataclasses.dataclass(frozen=True)
class ButcherTableau:
    """Coefficients of an explicit Runge-Kutta method.

    For y' = f(y) with step h:

        k_i  = f(y + h * sum_{j<i} a[i][j] k_j),  i = 1..s
        y1   = y + h * sum_i b[i] k_i

    c[i] = sum_j a[i][j] is the time at which stage i is evaluated (the vector field here is
    autonomous, so c only enters the checks). Row i of `a` holds the i coefficients a[i][0..i-1]
    (strictly lower triangular: the method is explicit).

    Attributes:
        c: stage times, length s.
        a: tuple of s rows, row i of length i.
        b: weights, length s.
    """

    c: tuple
    a: tuple
    b: tuple

    def __post_init__(self):
        stages = len(self.b)
        if stages == 0:
            raise ConfigError("ButcherTableau.b must have at least one weight, got ().", "b")
        if len(self.c) != stages or len(self.a) != stages:
            raise ConfigError(
                f"ButcherTableau needs len(c) == len(a) == len(b); got len(c)={len(self.c)}, "
                f"len(a)={len(self.a)}, len(b)={stages}.", "a"
            )
        for i, row in enumerate(self.a):
            if len(row) != i:
                raise ConfigError(
                    f"ButcherTableau.a row {i} must have {i} entries (explicit method: strictly "
                    f"lower triangular), got {row!r}.", "a"
                )
            if not math.isclose(sum(row), self.c[i], abs_tol=_COEFFICIENT_ATOL):
                raise ConfigError(
                    f"ButcherTableau row {i}: sum(a[{i}]) = {sum(row)!r} must equal "
                    f"c[{i}] = {self.c[i]!r}.", "a"
                )
        if not math.isclose(sum(self.b), 1.0, abs_tol=_COEFFICIENT_ATOL):
            raise ConfigError(
                f"ButcherTableau.b must sum to 1, got sum({self.b!r}) = {sum(self.b)!r}.", "b"
            )

    def _a(self, i, j):
        return self.a[i][j] if j < i else 0.0

    def satisfies_order(self, order: int) -> bool:
        """Whether the classical order conditions up to `order` (1 <= order <= 4) hold.

        The conditions (Hairer, Norsett, Wanner, Solving ODEs I, II.2), with c = A 1:

            order 1: sum_i b_i = 1
            order 2: sum_i b_i c_i = 1/2
            order 3: sum_i b_i c_i^2 = 1/3,  sum_ij b_i a_ij c_j = 1/6
            order 4: sum_i b_i c_i^3 = 1/4,  sum_ij b_i c_i a_ij c_j = 1/8,
                     sum_ij b_i a_ij c_j^2 = 1/12,  sum_ijk b_i a_ij a_jk c_k = 1/24
        """
        if not 1 <= order <= 4:
            raise ConfigError(
                f"order must be in 1..4 (the conditions checked here), got {order!r}.", "order")
        s, b, c, a = len(self.b), self.b, self.c, self._a
        r = range(s)
        ac = [sum(a(i, j) * c[j] for j in r) for i in r]  # (A c)_i
        conditions = {
            1: [(sum(b), 1.0)],
            2: [(sum(b[i] * c[i] for i in r), 1 / 2)],
            3: [
                (sum(b[i] * c[i] ** 2 for i in r), 1 / 3),
                (sum(b[i] * ac[i] for i in r), 1 / 6),
            ],
            4: [
                (sum(b[i] * c[i] ** 3 for i in r), 1 / 4),
                (sum(b[i] * c[i] * ac[i] for i in r), 1 / 8),
                (sum(b[i] * a(i, j) * c[j] ** 2 for i in r for j in r), 1 / 12),
                (sum(b[i] * a(i, j) * ac[j] for i in r for j in r), 1 / 24),
            ],
        }
        return all(
            math.isclose(value, target, abs_tol=_COEFFICIENT_ATOL)
            for k in range(1, order + 1)
            for value, target in conditions[k]
        )


class ExplicitRungeKutta(Integrator):
    """Explicit Runge-Kutta step of Hamilton's equations, y = (q, p), f = vector_field:

        k_i = (dH/dp, -dH/dq) at (q, p) + dt * sum_{j<i} a_ij k_j
        (q1, p1) = (q, p) + dt * sum_i b_i k_i

    One evaluation of both gradients of H per stage (euler: 1, rk4: 4). Not symplectic: on a
    conservative system the energy error grows with the number of steps (explicit Euler on the
    harmonic oscillator multiplies the energy by 1 + dt^2 every step). The declared order holds
    for any smooth H, separable or not.

    Args:
        name: registry name.
        order: declared global order, 1..4; checked against the order conditions of the tableau
            (they must hold up to `order` and, below 4, fail at `order + 1`).
        tableau: the `ButcherTableau`.

    Raises:
        ConfigError: if the tableau does not have exactly the declared order.
    """

    symplectic = False

    def __init__(self, name: str, order: int, tableau: ButcherTableau):
        if not tableau.satisfies_order(order):
            raise ConfigError(
                f"ExplicitRungeKutta {name!r}: the tableau does not satisfy the order conditions "
                f"for the declared order={order!r}.", "order"
            )
        if order < 4 and tableau.satisfies_order(order + 1):
            raise ConfigError(
                f"ExplicitRungeKutta {name!r}: the tableau has order >= {order + 1}, but "
                f"order={order!r} was declared; declare the true order.", "order"
            )
        self.name = name
        self.order = order
        self.tableau = tableau

    def __repr__(self):
        return f"ExplicitRungeKutta(name={self.name!r}, order={self.order})"

    def _step(self, hamiltonian, q, p, dt):
        tableau = self.tableau
        k_q, k_p = [], []
        for i in range(len(tableau.b)):
            q_i, p_i = q, p
            for j, a_ij in enumerate(tableau.a[i]):
                if a_ij != 0.0:  # Zero coefficients are skipped at trace time, not multiplied.
                    q_i = q_i + (a_ij * dt) * k_q[j]
                    p_i = p_i + (a_ij * dt) * k_p[j]
            dq_dt, dp_dt = vector_field(hamiltonian, q_i, p_i)
            k_q.append(dq_dt)
            k_p.append(dp_dt)
        q1, p1 = q, p
        for b_i, kq_i, kp_i in zip(tableau.b, k_q, k_p):
            if b_i != 0.0:
                q1 = q1 + (b_i * dt) * kq_i
                p1 = p1 + (b_i * dt) * kp_i
        return q1, p1


class SymplecticComposition(Integrator):
    """Composition of kick-drift-kick Stormer-Verlet (leapfrog) sub-steps of sizes w_i dt.

    One leapfrog sub-step of size h (the HGN paper's appendix A.6 form, written for general H):

        p_half = p - h/2 * dH/dq(q, p)
        q1     = q + h * dH/dp(q, p_half)          # dq/dt comes from dH/dp, not from p
        p1     = p_half - h/2 * dH/dq(q1, p_half)

    Three one-partial gradient evaluations of H per sub-step, so 3 * len(weights) per step
    (leapfrog 3, yoshida 9). Adjacent kicks of consecutive sub-steps are NOT merged: merging
    them is exact only for separable H, and for a learned H it would change the scheme.

    For an H that declares itself separable (`SeparableHamiltonian`, or the library's
    `HamiltonianNet`), the same updates are computed from the terms they need: the kicks from
    dV/dq(q), the drift from dK/dp(p_half), and the second kick's dV/dq(q1) is reused by the next
    sub-step's first kick (and, in `integrate`, by the next step's): per step len(weights) + 1
    gradients of V and len(weights) of K on the first step, len(weights) of each after it.

    The step is (Phi_{w_1 dt} o ... o Phi_{w_m dt}) with palindromic weights (w_i = w_{m+1-i}),
    so for separable H = T(p) + V(q) it is symplectic, time-reversible (step(dt) then step(-dt)
    is the identity up to rounding) and of even order: 2 when sum w = 1, 4 when additionally
    sum w^3 = 0 (Hairer, Lubich, Wanner, Geometric Numerical Integration, II.4). For non-separable
    H it is none of these; it is then first order (see the module docstring).

    Args:
        name: registry name.
        order: declared global order for separable H, 2 or 4; checked against the weights.
        weights: sub-step fractions w_1..w_m; must be palindromic and sum to 1.

    Raises:
        ConfigError: if the weights are not palindromic, do not sum to 1, or do not give exactly
            the declared order.
    """

    symplectic = True

    def __init__(self, name: str, order: int, weights: tuple):
        weights = tuple(float(w) for w in weights)
        if not weights:
            raise ConfigError(
                f"SymplecticComposition {name!r}: weights must be non-empty, got ().", "weights")
        if not math.isclose(sum(weights), 1.0, abs_tol=_COEFFICIENT_ATOL):
            raise ConfigError(
                f"SymplecticComposition {name!r}: weights must sum to 1, got "
                f"sum({weights!r}) = {sum(weights)!r}.", "weights"
            )
        if any(
            not math.isclose(w, v, abs_tol=_COEFFICIENT_ATOL)
            for w, v in zip(weights, reversed(weights))
        ):
            raise ConfigError(
                f"SymplecticComposition {name!r}: weights must be palindromic (a symmetric "
                f"composition, hence time-reversible), got {weights!r}.", "weights"
            )
        if order not in (2, 4):
            raise ConfigError(
                f"SymplecticComposition {name!r}: order must be 2 or 4 (the orders whose "
                f"conditions are checked here), got {order!r}.", "order"
            )
        has_order_4 = math.isclose(sum(w**3 for w in weights), 0.0, abs_tol=_COEFFICIENT_ATOL)
        if has_order_4 != (order == 4):
            raise ConfigError(
                f"SymplecticComposition {name!r}: declared order={order!r}, but sum(w^3) = "
                f"{sum(w**3 for w in weights)!r} gives order {4 if has_order_4 else 2}.", "order"
            )
        self.name = name
        self.order = order
        self.weights = weights

    def __repr__(self):
        return (
            f"SymplecticComposition(name={self.name!r}, order={self.order}, weights={self.weights})"
        )

    def _step(self, hamiltonian, q, p, dt):
        terms = _separable_terms(hamiltonian, q, p)
        if terms is not None:
            q, p, _ = self._separable_step(*terms, q, p, dt, _term_gradient(terms[1], q))
            return q, p
        for w in self.weights:
            h = w * dt
            p_half = p - (h / 2) * _energy_gradients(hamiltonian, q, p, "q")
            q = q + h * _energy_gradients(hamiltonian, q, p_half, "p")
            p = p_half - (h / 2) * _energy_gradients(hamiltonian, q, p_half, "q")
        return q, p

    def _separable_step(self, kinetic, potential, q, p, dt, force):
        """The step for H = K(p) + V(q); `force` is dV/dq(q) on entry and at the new q on exit."""
        for w in self.weights:
            h = w * dt
            p_half = p - (h / 2) * force
            q = q + h * _term_gradient(kinetic, p_half)
            force = _term_gradient(potential, q)
            p = p_half - (h / 2) * force
        return q, p, force

    def _initial_carry(self, hamiltonian, q, p):
        terms = _separable_terms(hamiltonian, q, p)
        return () if terms is None else (_term_gradient(terms[1], q),)

    def _step_with_carry(self, hamiltonian, q, p, dt, carry):
        terms = _separable_terms(hamiltonian)
        if terms is None:
            return super()._step_with_carry(hamiltonian, q, p, dt, carry)
        q, p, force = self._separable_step(*terms, q, p, dt, carry[0])
        return q, p, (force,)


_CBRT2 = 2.0 ** (1.0 / 3.0)
_YOSHIDA_W1 = 1.0 / (2.0 - _CBRT2)
_YOSHIDA_W0 = -_CBRT2 / (2.0 - _CBRT2)

_REGISTRY = {
    "euler": ExplicitRungeKutta(
        "euler", order=1, tableau=ButcherTableau(c=(0.0,), a=((),), b=(1.0,))
    ),
    "leapfrog": SymplecticComposition("leapfrog", order=2, weights=(1.0,)),
    "rk4": ExplicitRungeKutta(
        "rk4",
        order=4,
        tableau=ButcherTableau(
            c=(0.0, 0.5, 0.5, 1.0),
            a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
            b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
        ),
    ),
    "yoshida": SymplecticComposition(
        "yoshida", order=4, weights=(_YOSHIDA_W1, _YOSHIDA_W0, _YOSHIDA_W1)
    ),
}

NAMES = tuple(_REGISTRY)


def get(name: str) -> Integrator:
    """Returns the integrator registered under `name` (one of `NAMES`).

    Raises:
        ConfigError: if `name` is not one of `NAMES`.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(f"Unknown integrator {name!r}; valid names are {NAMES}.",
                          "integrator") from None


# The states decoded together inside `integrate`'s loop (measured: bench/README.md).
DECODE_EVERY = 5


def xla_steps(step: Callable, xla_max_batch: int | None, q0: tf.Tensor) -> Callable:
    """`step` as it is, or compiled by XLA (`tf.function(jit_compile=True)`) for small batches.

    A step of a small batch is overhead-bound: dozens of tiny ops (the Hamiltonian's convolutions
    on a 4x4 state, their gradients, the updates), each dispatched on its own. XLA fuses them into
    a few kernels: on this project's 2-core CPU a 29-step leapfrog rollout of the paper preset
    takes 26 ms compiled against 56 ms at batch 1, 73 against 136 ms at batch 8 and 145 against
    180 ms at batch 16, but 257 against 249 ms at batch 32 and 367 against 326 ms at batch 64
    (XLA's CPU convolutions are slower than oneDNN's once the ops are large), hence a batch
    threshold. The arithmetic is the same; XLA may reorder float sums (1e-8 differences in q).
    Training compiles every batch's step (`ModelConfig.xla_steps`): the step's gradients are
    compiled with it, and the paper preset's training step is 6-8% faster on this CPU.

    Args:
        step: (q, p, carry) -> (q, p, carry), one integrator step.
        xla_max_batch: compile for batches of at most this many samples; 0: never; None:
            every batch.
        q0: the initial q; its static batch size, when known, picks the path at trace time,
            else a `tf.cond` on its dynamic batch size picks it per call (one XLA compilation
            per batch size, then cached).

    Raises:
        ConfigError: if `xla_max_batch` is not a non-negative integer.
    """
    if xla_max_batch is not None:
        non_negative_int("xla_max_batch", xla_max_batch)
    if xla_max_batch == 0:
        return step
    compiled = tf.function(step, jit_compile=True)
    if xla_max_batch is None:
        return compiled
    batch = q0.shape[0]
    if batch is not None:
        return compiled if batch <= xla_max_batch else step
    small = tf.shape(q0)[0] <= xla_max_batch
    return lambda *args: tf.cond(small, lambda: compiled(*args), lambda: step(*args))


def integrate(
    integrator: Integrator,
    hamiltonian: Hamiltonian,
    q0,
    p0,
    dt,
    n_steps: int | tf.Tensor,
    xla_max_batch: int = 0,
    decode: Callable | None = None,
    decode_every: int = DECODE_EVERY,
):
    """Rolls out `n_steps` steps of `integrator` in a `tf.while_loop`.

    The loop body is traced once, so the graph size does not depend on n_steps. The rollout is
    differentiable with respect to the Hamiltonian's variables (and q0, p0, dt) through the loop.

        qs[0], ps[0] = q0, p0
        qs[t+1], ps[t+1] = integrator.step(hamiltonian, qs[t], ps[t], dt)

    Args:
        integrator: an `Integrator`, e.g. `get("leapfrog")`.
        hamiltonian: callable H(q, p) returning one energy per sample, shape [B].
        q0, p0: initial state, tensors of shape [B, ...], same floating dtype.
        dt: python float or scalar tensor (negative: backward in time), cast to q0.dtype.
        n_steps: number of steps, a non-negative python int or a scalar integer tensor.
        xla_max_batch: batches of at most this many samples run each step compiled by XLA
            (`xla_steps`); 0 (the default) never; None every batch. A small batch's step is
            dozens of tiny ops, and XLA fusing them halves a batch-1 rollout.

        decode: optional callable, states [m, B, ...] -> [m, B, ...] (e.g. a decoder's frames).
            Given, the loop applies it to each run of `decode_every` consecutive states as soon
            as they exist, so that it overlaps the next steps' integration (the loop runs up to
            2 x `decode_every` iterations at once); a 30-frame rollout of the paper preset took
            7% less time at batch 1, 16 and 64 on this project's 2-core CPU than with every
            state decoded after the loop (bench/README.md), with the same values. Not for
            gradients: a decoder trained through the loop would differentiate run by run.
        decode_every: the states decoded together (>= 1).

    Returns:
        (qs, ps), each of shape [n_steps + 1, B, ...]; index 0 is the initial state; with
        `decode`, (qs, ps, decoded), decoded of shape [n_steps + 1, B, ...].

    Raises:
        ConfigError: if n_steps is a negative python int, or `decode_every` is not positive.
        TypeError: if `integrator` is not an `Integrator` (pass `get(name)` for a name).
    """
    if not isinstance(integrator, Integrator):
        raise TypeError(
            f"integrator must be an Integrator (use integrators.get(name) with a name in {NAMES}), "
            f"got {integrator!r}."
        )
    if isinstance(n_steps, bool) or (isinstance(n_steps, int) and n_steps < 0):
        raise ConfigError(f"n_steps must be a non-negative integer, got {n_steps!r}.", "n_steps")
    q0, p0, dt = _prepare(q0, p0, dt)
    n_steps = tf.cast(n_steps, tf.int32)
    step = xla_steps(lambda q, p, carry: integrator._step_with_carry(hamiltonian, q, p, dt, carry),
                     xla_max_batch, q0)

    qs = tf.TensorArray(q0.dtype, size=n_steps + 1, element_shape=q0.shape).write(0, q0)
    ps = tf.TensorArray(p0.dtype, size=n_steps + 1, element_shape=p0.shape).write(0, p0)
    carry = integrator._initial_carry(hamiltonian, q0, p0)
    if decode is not None:
        return _integrate_decoded(step, q0, p0, carry, qs, ps, n_steps, decode,
                                  positive_int("decode_every", decode_every))

    def body(t, q, p, carry, qs, ps):
        q, p, carry = step(q, p, carry)
        return t + 1, q, p, carry, qs.write(t + 1, q), ps.write(t + 1, p)

    _, _, _, _, qs, ps = tf.while_loop(
        lambda t, *_: t < n_steps,
        body,
        (tf.constant(0, tf.int32), q0, p0, carry, qs, ps),
        maximum_iterations=n_steps,
    )
    return qs.stack(), ps.stack()


def _integrate_decoded(step, q0, p0, carry, qs, ps, n_steps, decode, every):
    """`integrate`'s loop, decoding the states in runs of `every` inside it (see `integrate`).

    After state j is written, if j closes a run (j + 1 a multiple of `every`, or j the last
    state), the run's states [j - j % every, j] are read back from the TensorArray and decoded;
    the decoded values are scattered to the same indices. Nothing in the next iteration's step
    depends on the decoding, so with 2 x `every` iterations allowed in flight the decoder of one
    run and the integrator's next steps run at the same time (with 2, a run's decoding held the
    loop back after one more step, and the rollout was slower than decoding after the loop).
    `decode` must return values of the states' dtype.
    """
    def decode_run(end, qs, out):
        idx = tf.range(end - end % every, end + 1)
        return out.scatter(idx, decode(qs.gather(idx)))

    out = tf.TensorArray(q0.dtype, size=n_steps + 1, infer_shape=False,
                         element_shape=tf.TensorShape(None))
    # The loop writes states 1..n_steps; state 0's run closes before it when that run is state 0
    # alone (runs of 1, or no step at all).
    out = tf.cond(tf.logical_or(tf.constant(every == 1), tf.equal(n_steps, 0)),
                  lambda: decode_run(tf.constant(0), qs, out), lambda: out)

    def body(t, q, p, carry, qs, ps, out):
        q, p, carry = step(q, p, carry)
        j = t + 1
        qs, ps = qs.write(j, q), ps.write(j, p)
        closes = tf.logical_or(tf.equal((j + 1) % every, 0), tf.equal(j, n_steps))
        out = tf.cond(closes, lambda: decode_run(j, qs, out), lambda: out)
        return j, q, p, carry, qs, ps, out

    _, _, _, _, qs, ps, out = tf.while_loop(
        lambda t, *_: t < n_steps,
        body,
        (tf.constant(0, tf.int32), q0, p0, carry, qs, ps, out),
        maximum_iterations=n_steps,
        parallel_iterations=2 * every,
    )
    return qs.stack(), ps.stack(), out.stack()
