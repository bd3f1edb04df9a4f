"""Vectorised Gamma and Beta samplers from pre-drawn normals and uniforms.

Marsaglia & Tsang (2000), "A simple method for generating gamma variables", ACM TOMS 26(3),
363-372, Section 2 (the algorithm box; the squeeze test is omitted, it only saves a log in scalar
code). For shape a >= 1, with d = a - 1/3 and c = 1/sqrt(9 d), a candidate from x ~ N(0,1) and
u ~ U(0,1) is

    v = (1 + c x)^3,   accepted iff  v > 0  and  ln u < x^2/2 + d - d v + d ln v,

and an accepted candidate returns d v ~ Gamma(a, 1) exactly. A candidate is accepted with
probability 0.952 at a = 1, rising towards 1 as a grows (rejection ~ 0.03 / a).

`jax.random.gamma` draws one element at a time on CPU. Here V variates are sampled at once from
V + r pre-drawn candidates (x_j, u_j): candidate j < V is variate j's first; the r spares are
then offered, one at a time, to the first variate still unfinished (a static, unrolled loop of
one-hot selects). What is still unfinished after that is finished by an exact fallback, a
`lax.while_loop` offering one fresh candidate per round, drawn from a PRNG key, to the first
unfinished variate. Under `vmap` the loop runs only in steps where some lane needs it, and its
key is derived only inside the loop, so the fast path draws no extra random numbers.

Exactness: every variate sees a sequence of i.i.d. candidates and keeps its first accepted one.
Which spare or fallback draw a variate is offered depends only on other variates' acceptance
events, never on the values of the candidate offered, and the number of trials of a rejection
sampler is independent of the value it returns; so the V outputs are independent and exactly
Gamma(a_j), whatever r is. Shape exactly 1 (frequent in Thompson sampling: an arm without
successes) uses Gamma(1) = Exp(1) = -ln(1 - u) and never rejects.

Beta(a, b) = G_a / (G_a + G_b) for independent G_a ~ Gamma(a), G_b ~ Gamma(b).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array


def mt_candidates(a: Array, x: Array, u: Array) -> tuple[Array, Array]:
    """Marsaglia-Tsang candidates d v and their acceptance flags; `a` broadcasts against x, u."""
    d = a - 1.0 / 3.0
    c = jax.lax.rsqrt(9.0 * d)
    v = (1.0 + c * x) ** 3
    positive = v > 0
    log_v = jnp.log(jnp.where(positive, v, 1.0))
    accept = positive & (jnp.log(u) < 0.5 * x * x + d - d * v + d * log_v)
    return d * v, accept


def gamma(a: Array, x: Array, u: Array, key_fn: Callable[[Array], Array]) -> Array:
    """Gamma(a, 1) variates for a 1-d array of shapes a >= 1 (V variates).

    x, u: pre-drawn N(0,1) and U[0,1) of shape (V + r,): one candidate per variate, then r
    spares offered in turn to the first unfinished variate. key_fn(i): a PRNG key for round i of
    the fallback, called only in steps where some variate is still unfinished after the spares.
    Shape exactly 1 is sampled without rejection as -ln(1 - u), Gamma(1) = Exp(1).
    """
    n = a.shape[0]
    value, done = mt_candidates(a, x[:n], u[:n])
    one = a == 1
    value = jnp.where(one, -jnp.log1p(-u[:n]), value)
    done = done | one
    for s in range(n, x.shape[0]):  # spares: a static, unrolled loop
        value, done = _offer(a, value, done, x[s], u[s])

    def pending(carry):
        return ~jnp.all(carry[2])

    def redraw(carry):
        i, value, done = carry
        pu = jax.random.uniform(key_fn(i), (2,), a.dtype, minval=jnp.finfo(a.dtype).tiny)
        return (i + 1, *_offer(a, value, done, jax.scipy.special.ndtri(pu[0]), pu[1]))

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
