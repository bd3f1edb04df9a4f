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
  rejected with probability 1.7e-4 (3e-3); then a `lax.while_loop` tests `CANDIDATES` fresh
  pairs per iteration i = 1, 2, ..., drawn from ``fold_in(key, i)`` of the step's PRNG key
  (``Draw(KEY)``), until one is accepted. Candidates are i.i.d. and the first accepted one is
  returned, so the sample is exactly Binomial whatever `CANDIDATES` is; under `vmap` the loop
  body runs only in steps where some seed needs it (a loop that runs in every step would cost
  more than the whole vectorised test: keep it off the hot path).
* n q < 10: inversion, a sequential search of the CDF from k = 0 (f(k+1) = f(k) (n-k)/(k+1) q/(1-q))
  with the first pre-drawn uniform; ~n q + 1 iterations of the same `lax.while_loop`.

On the CPU a scanned step costs about one small kernel launch per fused XLA operation, so the code
keeps the kernels few: one loop for both methods, log f evaluated once per pass (on the mode and
the candidates together), and the fallback's threefry draws written out (`bits`) instead of
`jax.random`'s per-hash loops.

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

from experiments import threefry as bits
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
class BTRSHat(NamedTuple):
    """BTRS constants for one (n, q), Hörmann's step 0 (m: the mode)."""

    n: Array
    q: Array
    a: Array
    b: Array
    c: Array
    v_r: Array
    alpha: Array
    mode: Array


def btrs_hat(n: Array, q: Array) -> BTRSHat:
    """The BTRS constants of Binomial(n, q), q <= 1/2 (Hörmann 1993, step 0)."""
    spq = jnp.sqrt(n * q * (1.0 - q))
    b = 1.15 + 2.53 * spq
    return BTRSHat(
        n,
        q,
        -0.0873 + 0.0248 * b + 0.01 * q,
        b,
        n * q + 0.5,
        0.92 - 4.2 / b,
        (2.83 + 5.1 / b) * spq,
        jnp.floor((n + 1.0) * q),
    )


def btrs_accept(h: BTRSHat, u: Array, v: Array) -> tuple[Array, Array]:
    """Candidates k from the pairs (u, v) (shape (m,)) and their acceptance, Hörmann's steps 1-3.4:
    the squeeze (u_s >= 0.07 and v <= v_r), else 0 <= k <= n and
    log(v alpha / (a/u_s^2 + b)) <= log f(k) - log f(m). log f is evaluated once, on the mode
    and the m candidates together (one call site: fewer kernels per step, less to compile)."""
    uu = u - 0.5
    us = jnp.maximum(0.5 - jnp.abs(uu), jnp.finfo(h.q.dtype).tiny)
    k = jnp.floor((2.0 * h.a / us + h.b) * uu + h.c)
    squeeze = (us >= 0.07) & (v <= h.v_r)
    inside = (k >= 0) & (k <= h.n)
    k = jnp.clip(k, 0.0, h.n)
    lp = log_pmf(jnp.concatenate([h.mode[None], k]), h.n, h.q)
    lhs = jnp.log(v * h.alpha / (h.a / (us * us) + h.b))
    return k, squeeze | (inside & (lhs <= lp[1:] - lp[0]))


def _search(u: Array, key: Array, n: Array, q: Array, use_btrs: Array, use_inv: Array) -> Array:
    """BTRS or inversion (q <= 1/2).

    BTRS: the pre-drawn pairs u (CANDIDATES, 2) are tested at once (vectorised); if none is
    accepted (probability 1.7e-4 at large n q), a `lax.while_loop` tests CANDIDATES fresh pairs
    from ``fold_in(key, i)`` in iteration i = 1, 2, ... The first accepted candidate is the
    sample (candidates are i.i.d., so it is exactly Binomial). Inversion: the smallest k with
    u[0, 0] <= F(k), searched from k = 0 one term per iteration of the same loop
    (f(k+1) = f(k) (n-k)/(k+1) q/(1-q)). Under `vmap` the loop body runs only in steps where some
    seed needs it (a loop body in every step would cost more than the whole vectorised test).
    """
    h = btrs_hat(jnp.where(use_btrs, n, 1e4), jnp.where(use_btrs, q, 0.5))
    ks, oks = btrs_accept(h, u[:, 0], u[:, 1])
    u0 = u[0, 0]
    ni = jnp.where(use_inv, n, 0.0)
    r = q / (1.0 - q)
    pmf0 = jnp.exp(ni * jnp.log1p(-q))
    kd = bits.key_data(key)

    def body(c):
        i, k, pmf, cdf, done = c
        uv = bits.uniform(bits.fold_in(kd, i), u.shape, u.dtype)
        kb, ok = btrs_accept(h, uv[:, 0], uv[:, 1])
        pmf_next = pmf * (ni - k) / (k + 1.0) * r
        k_inv, cdf_next = k + 1.0, cdf + pmf_next
        k_new = jnp.where(use_btrs, kb[jnp.argmax(ok)], k_inv)
        found = jnp.where(use_btrs, ok.any(), (u0 <= cdf_next) | (k_inv >= ni))
        return (
            i + 1,
            jnp.where(done, k, k_new),
            jnp.where(done, pmf, pmf_next),
            jnp.where(done, cdf, cdf_next),
            done | found,
        )

    k0 = jnp.where(use_btrs, ks[jnp.argmax(oks)], 0.0)
    done = jnp.where(use_btrs, oks.any(), ~use_inv | (u0 <= pmf0) | (ni <= 0))
    init = (jnp.ones((), jnp.uint32), k0, pmf0, pmf0, done)
    return jax.lax.while_loop(lambda c: ~c[4], body, init)[1]


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
    k = _search(u.astype(dtype), key, nf, q, use_btrs, use_inv)
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
