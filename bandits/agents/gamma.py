"""Vectorised Gamma and Beta samplers: Marsaglia-Tsang candidates from one key per step.

Marsaglia & Tsang (2000), "A simple method for generating gamma variables", ACM TOMS 26(3),
363-372, Section 2 (the algorithm box; the squeeze test is omitted, it only saves a log in scalar
code). For shape a >= 1, with d = a - 1/3 and c = 1/sqrt(9 d), a candidate from x ~ N(0,1) and
u ~ U(0,1) is

    v = (1 + c x)^3,   accepted iff  v > 0  and  ln u < x^2/2 + d - d v + d ln v,

and an accepted candidate returns d v ~ Gamma(a, 1) exactly. A candidate is accepted with
probability 0.952 at a = 1, rising towards 1 as a grows (rejection ~ 0.03 / a). The right-hand
side is evaluated as x^2/6 - c x^3/9 + 3 d (log1p(c x) - c x), the same number written without
the cancellation of d - d v + d ln v (in float32 that form decides about 0.1% of the candidates
differently from float64 at a = 10^5, 1% at a = 10^6; this one agrees with float64).

`jax.random.gamma` draws one element at a time on CPU. Here V variates are sampled at once from
V + r candidates (x_j, u_j): candidate j < V is variate j's first; the r spares are then offered,
one at a time, to the first variate still unfinished (a static, unrolled loop of one-hot
selects). What is still unfinished after that is finished by an exact fallback, a
`lax.while_loop` offering one fresh candidate per round, drawn from a PRNG key, to the first
unfinished variate. Under `vmap` the loop runs only in steps where some lane needs it, and its
key is derived only inside the loop, so the fast path draws no extra random numbers.

Exactness: every variate sees a sequence of i.i.d. candidates and keeps its first accepted one.
Which spare or fallback draw a variate is offered depends only on other variates' acceptance
events, never on the values of the candidate offered, and the number of trials of a rejection
sampler is independent of the value it returns; so the V outputs are independent and exactly
Gamma(a_j), whatever r is (exact up to the floating-point grid of the uniforms and the rounding
of the arithmetic). Shape exactly 1 (frequent in Thompson sampling: an arm without
successes) uses Gamma(1) = Exp(1) = -ln u and never rejects.

Candidates (`candidates`): n pairs from one PRNG key, 2n uniforms on the open grid
(m + 1/2) 2^-p (p = 23 for float32, 52 for float64; never 0 or 1, so every log is finite), the
normal of a pair being sqrt(2) erfinv(2 u' - 1) as in `jax.random.normal`. The 32-bit words are
`jax.random.bits` of the key with JAX's non-partitionable threefry counter scheme (Salmon et al.
2011, "Parallel random numbers: as easy as 1, 2, 3", SC'11): both words of each threefry2x32 block
are used, half the hashing of the default scheme.

Beta(a, b) = G_a / (G_a + G_b) for independent G_a ~ Gamma(a), G_b ~ Gamma(b).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from experiments.threefry import threefry2x32

Array = jax.Array


def key_words(key: Array, n: int) -> tuple[Array, Array]:
    """2n random 32-bit words from one PRNG key, as two arrays of shape (n,).

    Together they are `jax.random.bits(key, (2 n,), uint32)` under JAX's non-partitionable
    threefry scheme (the first n words, then the last n): block j = (j, n + j) hashed under the
    key, both of its output words kept. Keys of other implementations use `jax.random.bits`.
    """
    data = jax.random.key_data(key)
    if str(jax.random.key_impl(key)) != "threefry2x32":
        words = jax.random.bits(key, (2 * n,), jnp.uint32)
        return words[:n], words[n:]
    j = jnp.arange(n, dtype=jnp.uint32)
    return threefry2x32(data[0], data[1], j, j + jnp.uint32(n))


def unit_interval(hi: Array, lo: Array | None, dtype) -> Array:
    """U(0,1) variates (m + 1/2) 2^-p, m uniform on {0, ..., 2^p - 1}, from random words.

    float32: p = 23 from one word `hi`; float64: p = 52 from `hi` and `lo`. m + 1/2 and the
    product are exact in the float type: the values are the midpoints of 2^p equal cells (never
    0 or 1, so logs and the inverse error function stay finite).
    """
    if jnp.dtype(dtype) == jnp.float64:
        m = (hi.astype(jnp.uint64) << 20) | (lo.astype(jnp.uint64) >> 12)
        return (m.astype(dtype) + 0.5) * (2.0**-52)
    return ((hi >> 9).astype(dtype) + 0.5) * (2.0**-23)


def candidates(key: Array, n: int, dtype) -> tuple[Array, Array]:
    """n Marsaglia-Tsang candidates (x ~ N(0,1), u ~ U(0,1)) from one key, each of shape (n,).

    x = sqrt(2) erfinv(2 u' - 1) for a uniform u' (as `jax.random.normal` does). float32: the
    two words of block j give u'_j and u_j; float64: two blocks per candidate.
    """
    if jnp.dtype(dtype) == jnp.float64:
        hi, lo = key_words(key, 2 * n)
        w = unit_interval(hi, lo, dtype)
        w_x, u = w[:n], w[n:]
    else:
        hi, lo = key_words(key, n)
        w_x, u = unit_interval(hi, None, dtype), unit_interval(lo, None, dtype)
    x = jnp.sqrt(2.0).astype(dtype) * jax.lax.erf_inv(2.0 * w_x - 1.0)
    # Computed once: XLA would otherwise copy the hash into every fusion that reads x or u.
    return jax.lax.optimization_barrier((x, u))


def mt_candidates(a: Array, x: Array, u: Array) -> tuple[Array, Array]:
    """Marsaglia-Tsang candidates d v and their acceptance flags; `a` broadcasts against x, u."""
    d = a - 1.0 / 3.0
    c = jax.lax.rsqrt(9.0 * d)
    w = c * x
    positive = w > -1.0  # v = (1 + w)^3 > 0
    # x^2/2 + d - d v + d ln v with v = (1 + w)^3, 3 d w^2 = x^2/3 and d w^3 = x^2 w / 9:
    log1p_w = jnp.log1p(jnp.where(positive, w, 0.0))
    log_ratio = x * x / 6.0 - x * x * w / 9.0 + 3.0 * d * (log1p_w - w)
    accept = positive & (jnp.log(u) < log_ratio)
    return d * (1.0 + w) ** 3, accept


def gamma(a: Array, x: Array, u: Array, key_fn: Callable[[Array], Array]) -> Array:
    """Gamma(a, 1) variates for a 1-d array of shapes a >= 1 (V variates).

    x, u: N(0,1) and U(0,1) candidates of shape (V + r,): one per variate, then r spares offered
    in turn to the first unfinished variate. key_fn(i): a PRNG key for round i of the fallback,
    called only in steps where some variate is still unfinished after the spares. Shape exactly 1
    is sampled without rejection as -ln u, Gamma(1) = Exp(1). u must lie in (0, 1).
    """
    n = a.shape[0]
    value, done = mt_candidates(a, x[:n], u[:n])
    one = a == 1
    value = jnp.where(one, -jnp.log(u[:n]), value)
    done = done | one
    for s in range(n, x.shape[0]):  # spares: a static, unrolled loop
        value, done = _offer(a, value, done, x[s], u[s])

    def pending(carry):
        return ~jnp.all(carry[2])

    def redraw(carry):
        i, value, done = carry
        fx, fu = candidates(key_fn(i), 1, a.dtype)
        return (i + 1, *_offer(a, value, done, fx[0], fu[0]))

    _, value, _ = jax.lax.while_loop(pending, redraw, (jnp.zeros((), jnp.int32), value, done))
    return value


def _offer(a: Array, value: Array, done: Array, x: Array, u: Array) -> tuple[Array, Array]:
    """Offer the candidate (x, u) to the first unfinished variate (one-hot ops, no scatter)."""
    hot = (jnp.arange(a.shape[0]) == jnp.argmin(done)) & ~done
    vx, ok = mt_candidates(jnp.max(jnp.where(hot, a, 1.0)), x, u)
    take = hot & ok
    return jnp.where(take, vx, value), done | take


def beta(a: Array, b: Array, x: Array, u: Array, key_fn: Callable[[Array], Array]) -> Array:
    """Beta(a, b) variates for 1-d a, b >= 1 of length K; x, u of shape (2 K + r,)."""
    g = gamma(jnp.concatenate([a, b]), x, u, key_fn)
    k = a.shape[0]
    return g[:k] / (g[:k] + g[k:])
