"""Reward sums of n pulls of one arm, sampled in one draw from engine pre-drawn uniforms.

Exact Bernoulli sums. The sum of n Bernoulli(p) rewards is Binomial(n, p). With q = min(p, 1-p)
(the sample for p > 1/2 is n minus a Binomial(n, 1-p) sample):

* n q >= 10: BTRS, the transformed rejection with squeeze of Hörmann, "The generation of binomial
  random variates", J. Stat. Comput. Simul. 46 (1993), 101-110, algorithm BTRS (steps 0-3.4). A
  candidate from a pair (U, V) of uniforms is k = floor((2a/u_s + b) U + c) with U' = U - 1/2,
  u_s = 1/2 - |U'|; it is accepted at once when u_s >= 0.07 and V <= v_r (the squeeze), else when
  0 <= k <= n and log(V alpha / (a/u_s^2 + b)) <= log f(k) - log f(m), m = floor((n+1) q) the mode
  and f the Binomial pmf. Each step gets `CANDIDATES` = 4 pre-drawn pairs (the engine's
  ``Draw(UNIFORM, (4, 2))``), all tested at once (vectorised), and takes the first accepted one.
  A candidate is accepted with probability 0.885 at large n q (0.74 at n q ~ 10), so all four are
  rejected with probability 1.7e-4 (3e-3); then a `lax.while_loop` tests fresh pairs drawn from
  the step's PRNG key (``Draw(KEY)``) until one is accepted. Candidates are i.i.d. and the first
  accepted one is returned, so the sample is exactly Binomial whatever `CANDIDATES` is; under
  `vmap` the loop body runs only in steps where some seed needs it (a loop that runs in every
  step would cost more than the whole vectorised test: keep it off the hot path).
* n q < 10: inversion, a sequential search of the CDF from k = 0 (f(k+1) = f(k) (n-k)/(k+1) q/(1-q))
  with the first pre-drawn uniform; ~n q + 1 iterations, in a `lax.while_loop`.

log f(k) is computed in Loader's saddle-point form ("Fast and accurate computation of binomial
probabilities", 2000, eq. 3): log f(k) = stirlerr(n) - stirlerr(k) - stirlerr(n-k) - bd0(k, nq)
- bd0(n-k, n(1-q)) + (1/2) log(n / (2 pi k (n-k))), with bd0(x, M) = x log(x/M) + M - x = M phi(t),
phi(t) = (1+t) log1p(t) - t, t = x/M - 1. Unlike lgamma differences (or the log-ratio form used by
`jax.random.binomial`), no term is of size n, so the test stays accurate at n = 1e17 in float64
(absolute error ~ |k - nq| 1e-16 on a quantity of size (k - nq)^2 / (n q (1-q))).

Counts are exact in float64 up to 2^53 pulls per batch; beyond, the sample is rounded to float64
(relative error 1e-16; the sd sqrt(n q (1-q)) is then > 1e7 float spacings wide). In float32
(no x64) keep n q (1-q) well below 2^24.

Gaussian sums: n mu + sigma sqrt(n) Z (exact). Faithful mode (the authors'
`Bernoulli_Arm.batch_pull` in `streamingMAB.py` of their released code for Wang, ICML 2023):
for n > 10^5 the empirical mean is mu + N(0, (2/sqrt n)^2), i.e. the sum is
n mu + 2 sqrt(n) Z (four times the largest Bernoulli sd); n <= 10^5 is sampled exactly.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from experiments.protocol import KEY, UNIFORM, Draw

Array = jax.Array

CANDIDATES = 4  # BTRS candidate pairs pre-drawn per step
BTRS_MIN_MEAN = 10.0  # Hörmann: BTRS for n q >= 10, inversion below
FAITHFUL_GAUSSIAN_ABOVE = 100_000  # the authors' threshold for the Gaussian approximation
FAITHFUL_SD = 2.0  # the authors' sd of the empirical mean times sqrt(n)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def binomial_draws() -> dict[str, Draw]:
    """The engine draws one exact Binomial sample needs per step."""
    return {"u": Draw(UNIFORM, (CANDIDATES, 2)), "key": Draw(KEY)}


# --------------------------------------------------------------------------- log pmf
def _stirlerr_table(upto: int = 16) -> tuple[float, ...]:
    """stirlerr(j) = log j! - [(j + 1/2) log j - j + log sqrt(2 pi)] for j = 1..upto (index j-1)."""
    return tuple(
        math.lgamma(j + 1.0) - (j + 0.5) * math.log(j) + j - _HALF_LOG_2PI
        for j in range(1, upto + 1)
    )


_STIRLERR = _stirlerr_table()


def stirlerr(x: Array) -> Array:
    """log Gamma(x+1) - [(x + 1/2) log x - x + log sqrt(2 pi)] at integers x >= 1 (Stirling's
    error): a table for x <= 16, else the asymptotic series to x^-7 (error < 1e-17)."""
    big = x > 16.0
    xs = jnp.where(big, x, 17.0)
    x2 = 1.0 / (xs * xs)
    series = (1 / 12 - x2 * (1 / 360 - x2 * (1 / 1260 - x2 / 1680))) / xs
    table = jnp.asarray(_STIRLERR, x.dtype)[jnp.clip(x.astype(jnp.int32) - 1, 0, 15)]
    return jnp.where(big, series, table)


def bd0(x: Array, M: Array) -> Array:
    """x log(x/M) + M - x = M phi(x/M - 1) for x > 0, M > 0 (Loader's deviance term)."""
    t = (x - M) / M
    return M * ((1.0 + t) * jnp.log1p(t) - t)


def log_pmf(k: Array, n: Array, q: Array) -> Array:
    """log of the Binomial(n, q) pmf at integer 0 <= k <= n (Loader's form, module docstring)."""
    interior = (k > 0) & (k < n)
    ks = jnp.where(interior, k, 1.0)
    nk = jnp.where(interior, n - k, 1.0)
    val = (
        stirlerr(n)
        - stirlerr(ks)
        - stirlerr(nk)
        - bd0(ks, n * q)
        - bd0(nk, n * (1.0 - q))
        + 0.5 * (jnp.log(n) - jnp.log(ks) - jnp.log(nk))
        - _HALF_LOG_2PI
    )
    edge = jnp.where(k <= 0, n * jnp.log1p(-q), n * jnp.log(q))
    return jnp.where(interior, val, edge)


# --------------------------------------------------------------------------- BTRS
class _Hat(NamedTuple):
    """BTRS constants for one (n, q), Hörmann's step 0."""

    n: Array
    q: Array
    a: Array
    b: Array
    c: Array
    v_r: Array
    alpha: Array
    log_f_mode: Array


def _hat(n: Array, q: Array) -> _Hat:
    spq = jnp.sqrt(n * q * (1.0 - q))
    b = 1.15 + 2.53 * spq
    mode = jnp.floor((n + 1.0) * q)
    return _Hat(
        n,
        q,
        -0.0873 + 0.0248 * b + 0.01 * q,
        b,
        n * q + 0.5,
        0.92 - 4.2 / b,
        (2.83 + 5.1 / b) * spq,
        log_pmf(mode, n, q),
    )


def _candidate(h: _Hat, u: Array, v: Array) -> tuple[Array, Array, Array]:
    """Candidate k from (u, v), its squeeze acceptance (step 1), and the flag `inside`, which
    says 0 <= k <= n (steps 2-3 reject outside)."""
    uu = u - 0.5
    us = jnp.maximum(0.5 - jnp.abs(uu), jnp.finfo(h.q.dtype).tiny)
    k = jnp.floor((2.0 * h.a / us + h.b) * uu + h.c)
    squeeze = (us >= 0.07) & (v <= h.v_r)
    return jnp.clip(k, 0.0, h.n), squeeze, (k >= 0) & (k <= h.n)


def _accept(h: Array, u: Array, v: Array) -> tuple[Array, Array]:
    """The full BTRS test (steps 1-3.4): k and its acceptance."""
    k, squeeze, inside = _candidate(h, u, v)
    us = jnp.maximum(0.5 - jnp.abs(u - 0.5), jnp.finfo(h.q.dtype).tiny)
    lhs = jnp.log(v * h.alpha / (h.a / (us * us) + h.b))
    return k, squeeze | (inside & (lhs <= log_pmf(k, h.n, h.q) - h.log_f_mode))


def btrs_candidates(u: Array, v: Array, n: Array, q: Array) -> tuple[Array, Array]:
    """BTRS candidates and acceptance flags for uniforms u, v (any shape); n q >= 10, q <= 1/2."""
    return _accept(_hat(n, q), u, v)


def _btrs(u: Array, key: Array, n: Array, q: Array, needed: Array) -> Array:
    """The first accepted BTRS candidate among the pre-drawn pairs u (m, 2) (all tested at once,
    vectorised), else from fresh pairs drawn from `key` in a `while_loop` until one is accepted."""
    h = _hat(n, q)
    ks, oks = _accept(h, u[:, 0], u[:, 1])
    first = jnp.argmax(oks)

    def redraw(carry):
        i, k, done = carry
        uv = jax.random.uniform(jax.random.fold_in(key, i), (2,), q.dtype)
        kc, ok = _accept(h, uv[0], uv[1])
        return i + 1, jnp.where(done, k, kc), done | ok

    init = (jnp.zeros((), jnp.int32), ks[first], oks[first] | ~needed)
    return jax.lax.while_loop(lambda c: ~c[2], redraw, init)[1]


def _inversion(u: Array, n: Array, q: Array, needed: Array) -> Array:
    """Sequential CDF search: the smallest k with u <= F(k) (n q < 10, q <= 1/2)."""
    r = q / (1.0 - q)
    pmf = jnp.exp(n * jnp.log1p(-q))
    zero = jnp.zeros_like(q)

    def step(carry):
        k, pmf, cdf, _ = carry
        pmf = pmf * (n - k) / (k + 1.0) * r
        k, cdf = k + 1.0, cdf + pmf
        return k, pmf, cdf, (u <= cdf) | (k >= n)

    init = (zero, pmf, pmf, ~needed | (u <= pmf) | (n <= 0))
    return jax.lax.while_loop(lambda c: ~c[3], step, init)[0]


def binomial(u: Array, key: Array, n: Array, p: Array) -> Array:
    """One exact Binomial(n, p) sample as a float of p's dtype (module docstring).

    u: (CANDIDATES, 2) pre-drawn U[0,1); key: PRNG key for the rare fallback; n >= 0 integer
    (any int or float dtype); p in [0, 1].
    """
    dtype = p.dtype
    nf = n.astype(dtype)
    flip = p > 0.5
    q = jnp.where(flip, 1.0 - p, p)
    degenerate = (nf <= 0) | (q <= 0)
    use_btrs = ~degenerate & (nf * q >= BTRS_MIN_MEAN)
    use_inv = ~degenerate & ~use_btrs
    k_b = _btrs(
        u.astype(dtype), key, jnp.where(use_btrs, nf, 1e4), jnp.where(use_btrs, q, 0.5), use_btrs
    )
    k_i = _inversion(u[0, 0].astype(dtype), jnp.where(use_inv, nf, 0.0), q, use_inv)
    k = jnp.where(use_btrs, k_b, jnp.where(use_inv, k_i, 0.0))
    return jnp.where(flip, nf - k, k)


# --------------------------------------------------------------------------- reward sums
def binomial_sum(rng: dict, n: Array, mu: Array) -> Array:
    """Binomial(n, mu) from the step's draws rng["u"], rng["key"]; 0 when n == 0."""
    mu = jnp.clip(mu, 0.0, 1.0)
    return binomial(rng["u"], rng["key"], n, mu)


def bernoulli_sum(rng: dict, n: Array, mu: Array, faithful: bool) -> Array:
    """Sum of n Bernoulli(mu) rewards: exact, or the authors' Gaussian for n > 1e5 (`faithful`,
    which also needs rng["z"] ~ N(0, 1))."""
    if not faithful:
        return binomial_sum(rng, n, mu)
    nf = n.astype(mu.dtype)
    approx = n > FAITHFUL_GAUSSIAN_ABOVE
    exact = binomial_sum(rng, jnp.where(approx, 0, n), mu)
    return jnp.where(approx, nf * mu + FAITHFUL_SD * jnp.sqrt(nf) * rng["z"], exact)


def gaussian_sum(z: Array, n: Array, mu: Array, sigma: float) -> Array:
    """Sum of n N(mu, sigma^2) rewards: n mu + sigma sqrt(n) z (exact)."""
    nf = n.astype(mu.dtype)
    return nf * mu + sigma * jnp.sqrt(nf) * z
