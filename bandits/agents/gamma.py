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
differently from float64 at a = 10^5, 1% at a = 10^6; this one agrees with a float64 test on all
but about 1e-5 of the candidates at shapes up to 1e8: 2.8e-6 at a = 10^5, 2.2e-5 at 10^7,
7.7e-5 at 10^8, measured on 4e6 candidates).

Shapes 0 < a < 1 (the acceptance test above is not valid there: Gamma(0.5) comes out visibly
wrong, and for a < 1/3, d < 0 gives NaN) use the boost of the same paper (§6): a Gamma(a + 1)
variate G from the sampler, times U^(1/a) for an independent uniform U, is Gamma(a). U is
hashed from the step's key on counters no candidate uses (`_boost`), and the step does that work
only when some lane has a shape below 1 (`cond_any`): for shapes >= 1 the results are those of
the sampler without the boost, bit for bit.

`jax.random.gamma` draws one element at a time on CPU. Here V variates are sampled at once
(`gamma_keyed`): in round r = 0, ..., R - 1 variate j is offered candidate r V + j of
`candidates(key, R V)` (all R rounds are computed, fused: one threefry hash, one erfinv and the
test per candidate) and keeps its first accepted one. Variates that rejected all R candidates
(probability p(a)^R, p(1) = 0.048, p(2) = 0.018, p(10) = 0.003) are finished by an exact
fallback, a `lax.while_loop` offering one fresh candidate per round, drawn from a PRNG key, to the
first unfinished variate; under `vmap` it runs only in the lanes that need it
(`experiments.batched_cond.cond_lanes`), and only in steps where some lane does (`cond_any`
around it: the search for those lanes is a sort over the batch). Under `vmap` the candidates are
computed with the lanes as the minor axis (`custom_vmap`), which XLA's CPU loops vectorise.

Exactness: every variate sees a sequence of i.i.d. candidates and keeps its first accepted one.
Which fallback draw a variate is offered depends only on other variates' acceptance events,
never on the values of the candidate offered, and the number of trials of a rejection sampler is
independent of the value it returns; so the V outputs are independent and exactly Gamma(a_j),
whatever R is (exact up to the floating-point grid of the uniforms and the rounding of the
arithmetic). Shape exactly 1 (frequent in Thompson sampling: an arm without successes) uses
Gamma(1) = Exp(1) = -ln u and never rejects.

Candidates (`candidates`): n pairs from one PRNG key, 2n uniforms on the open grid
(m + 1/2) 2^-p (p = 23 for float32, 52 for float64; never 0 or 1, so every log is finite), the
normal of a pair being sqrt(2) erfinv(2 u' - 1) as in `jax.random.normal`. The 32-bit words are
`jax.random.bits` of the key with JAX's non-partitionable threefry counter scheme (Salmon et al.
2011, "Parallel random numbers: as easy as 1, 2, 3", SC'11): both words of each threefry2x32 block
are used, half the hashing of the default scheme.

Beta(a, b) = G_a / (G_a + G_b) for independent G_a ~ Gamma(a), G_b ~ Gamma(b) (e.g. Devroye,
"Non-Uniform Random Variate Generation", Springer 1986, §IX.4.1); Thompson sampling needs only
the index of the largest Beta variate (`beta_argmax`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import custom_batching

from experiments.batched_cond import cond_any, cond_lanes
from experiments.protocol import step_key
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


def gamma_keyed(a: Array, key: Array, rounds: int, fb_key: Array, t: Array, tag: int = 0) -> Array:
    """Gamma(a, 1) variates for a 1-d array of V shapes a > 0: `rounds` rounds of candidates
    from one key, then a per-lane keyed fallback; shapes below 1 are boosted (module docstring:
    Gamma(a + 1) sampled, times U^(1/a)).

    Round r offers variate j candidate r V + j of `candidates(key, rounds * V)`; a variate keeps
    its first accepted candidate. Variates that reject all R rounds (probability ~p(a)^R each;
    p(2) = 0.018, p(10) = 0.003) are finished by `fallback_gamma`, keyed by
    `step_key(fb_key, t, tag, i)` in its round i, only in the lanes that have one and only in
    steps where some lane does. Shape exactly 1 is -ln u of round 0's candidate (Exp(1)). Exact
    for every R (module docstring).
    """
    data = jax.random.key_data(key)
    if data.shape != (2,):
        raise ValueError(f"gamma_keyed: a threefry key is required (key data {data.shape})")
    small = a < 1.0
    shape = jnp.where(small, a + 1.0, a)  # Marsaglia-Tsang needs shape >= 1: boosted below
    value = _rounds(rounds)(shape, data)
    need = jnp.any(value < 0)
    value = cond_any(_fallback_lanes, tag)(need, (need, fb_key, t, shape, value), value)
    boost = jnp.any(small)
    return cond_any(_boost, rounds)(boost, (a, data, value), value)


def _boost(inputs, rounds: int) -> Array:
    """Gamma(a) = Gamma(a + 1) U^(1/a) for the shapes a < 1 (Marsaglia & Tsang 2000, their
    remark on a < 1); the others unchanged. U of variate j is `unit_interval` of threefry
    block (4n + j, 5n + j) of the step's key, n = rounds V: the candidates use blocks whose
    first counter is below 2n (float64; n in float32), so U is independent of every candidate
    and fallback draw. U^(1/a) = exp(ln U / a): it underflows to 0 where the variate is below
    the float's smallest normal (for a = 0.01 in float32 about 40% of Gamma(0.01) lies below
    1e-38)."""
    a, data, value = inputs
    n = rounds * a.shape[0]
    j = jnp.arange(a.shape[0], dtype=jnp.uint32) + jnp.uint32(4 * n)
    hi, lo = threefry2x32(data[0], data[1], j, j + jnp.uint32(n))
    u = unit_interval(hi, lo, a.dtype)
    return jnp.where(a < 1.0, value * jnp.exp(jnp.log(u) / a), value)


@functools.cache
def _rounds(rounds: int):
    """value = `_rounds_lanes_last` for one lane, batched with the lanes as the minor axis.

    Under `vmap` the (lanes, V) arrays are computed as (V, lanes): the elementwise hash and
    transforms then run along the long lane axis (XLA's CPU loops vectorise the minor axis; a
    minor axis of V = 20 costs about twice as much per candidate)."""

    def unbatched(a, data):
        return _rounds_lanes_last(a[:, None], data[:, None], rounds)[:, 0]

    fn = custom_batching.custom_vmap(unbatched)

    @fn.def_vmap
    def _rule(axis_size, in_batched, a, data):
        a, data = (
            x if b else jnp.broadcast_to(x, (axis_size, *x.shape))
            for x, b in zip((a, data), in_batched, strict=True)
        )
        a_t, data_t = a.T, data.T
        # a real branch (a > 0 always holds): its result is computed once, in its own fused loop,
        # and read by the consumers, which XLA would otherwise recompute it into
        value = jax.lax.cond(
            jnp.all(a_t > 0),
            lambda: _rounds_lanes_last(a_t, data_t, rounds),
            lambda: jnp.zeros_like(a_t),
        )
        return value.T, True

    return fn


def _rounds_lanes_last(a: Array, data: Array, rounds: int) -> Array:
    """First accepted of `rounds` candidates per variate, -1 where none; a (V, M), data (2, M)."""
    v_n = a.shape[0]
    n = rounds * v_n
    j0 = jnp.arange(v_n, dtype=jnp.uint32)[:, None]
    value = None
    for r in range(rounds):
        x, u = _block_candidates(data, j0 + jnp.uint32(r * v_n), n, a.dtype)
        v, ok = mt_candidates(a, x, u)
        if r == 0:
            value = jnp.where(a == 1, -jnp.log(u), jnp.where(ok, v, -1.0))
        else:
            value = jnp.where((value < 0) & ok, v, value)
    return value


def _block_candidates(data: Array, j: Array, n: int, dtype) -> tuple[Array, Array]:
    """Candidates j of `candidates(key, n, dtype)` from the key data (2, ...) (broadcast)."""
    if jnp.dtype(dtype) == jnp.float64:  # key_words(key, 2 n): w_x from blocks j, u from n + j
        hx, lx = threefry2x32(data[0], data[1], j, j + jnp.uint32(2 * n))
        hu, lu = threefry2x32(data[0], data[1], j + jnp.uint32(n), j + jnp.uint32(3 * n))
        w_x, u = unit_interval(hx, lx, dtype), unit_interval(hu, lu, dtype)
    else:  # key_words(key, n): both words of block j
        hi, lo = threefry2x32(data[0], data[1], j, j + jnp.uint32(n))
        w_x, u = unit_interval(hi, None, dtype), unit_interval(lo, None, dtype)
    return jnp.sqrt(2.0).astype(dtype) * jax.lax.erf_inv(2.0 * w_x - 1.0), u


def beta_argmax(g_a: Array, g_b: Array) -> Array:
    """argmax_i of the Beta(a_i, b_i) variates G_a,i / (G_a,i + G_b,i), for 1-d G_a, G_b > 0.

    Computed as argmax_i G_a,i / G_b,i (the same order: x / (1 + x) increases), one read of each
    variate; ties go to the lowest index. Under `vmap` the lanes are the minor axis (`_rounds`)."""
    return _beta_argmax(g_a, g_b)


@custom_batching.custom_vmap
def _beta_argmax(g_a: Array, g_b: Array) -> Array:
    return jnp.argmax(g_a / g_b)


@_beta_argmax.def_vmap
def _beta_argmax_rule(axis_size, in_batched, g_a, g_b):
    g_a, g_b = (
        x if b else jnp.broadcast_to(x, (axis_size, *x.shape))
        for x, b in zip((g_a, g_b), in_batched, strict=True)
    )
    return jnp.argmax(g_a.T / g_b.T, axis=0), True


def _fallback_lanes(inputs, tag: int) -> Array:
    """`cond_lanes(_fallback_lane)` inside the batch-wide branch of `cond_any`: the lanes that
    need the fallback are found (a sort over the batch) only in steps where some lane does."""
    need, *rest = inputs
    return cond_lanes(_fallback_lane, tag)(need, tuple(rest), rest[-1])


def _fallback_lane(inputs, tag: int) -> Array:
    """`fallback_gamma` for one lane (the unbatched branch of `cond_lanes`)."""
    key, t, a, value = inputs
    return fallback_gamma(a, value, value >= 0, lambda i: step_key(key, t, tag, i))


def fallback_gamma(a: Array, value: Array, done: Array, key_fn: Callable[[Array], Array]) -> Array:
    """Finish the unfinished variates: round i offers one fresh candidate from key_fn(i) to the
    first unfinished variate (`lax.while_loop`, one candidate per round)."""

    def pending(carry):
        return ~jnp.all(carry[2])

    def redraw(carry):
        i, value, done = carry
        fx, fu = candidates(key_fn(i), 1, a.dtype)
        return (i + 1, *_offer(a, value, done, fx[0], fu[0]))

    init = (jnp.zeros((), jnp.int32), value, done)
    return jax.lax.while_loop(pending, redraw, init)[1]


def _offer(a: Array, value: Array, done: Array, x: Array, u: Array) -> tuple[Array, Array]:
    """Offer the candidate (x, u) to the first unfinished variate (one-hot ops, no scatter)."""
    hot = (jnp.arange(a.shape[0]) == jnp.argmin(done)) & ~done
    vx, ok = mt_candidates(jnp.max(jnp.where(hot, a, 1.0)), x, u)
    take = hot & ok
    return jnp.where(take, vx, value), done | take
