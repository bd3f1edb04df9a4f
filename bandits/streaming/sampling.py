"""Reward sums of n pulls of one arm, sampled in one draw.

Exact: the sum of n Bernoulli(mu) rewards is Binomial(n, mu) (`jax.random.binomial`, the BTRS
rejection sampler of Hörmann 1993 for n min(mu, 1 - mu) > 10, inversion below); the sum of n
N(mu, sigma^2) rewards is n mu + sigma sqrt(n) Z. Counts are exact in float64 up to 2^53 pulls per
batch (beyond that the float64 sum is rounded, relative error 1e-16).

Faithful (the authors' `Bernoulli_Arm.batch_pull`, spec §2.0): for n > 10^5 the empirical mean is
mu + N(0, (2/sqrt(n))^2), i.e. the sum is n mu + 2 sqrt(n) Z — four times the largest Bernoulli
standard deviation; n <= 10^5 is sampled exactly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

FAITHFUL_GAUSSIAN_ABOVE = 100_000  # the authors' threshold for the Gaussian approximation
FAITHFUL_SD = 2.0  # the authors' sd of the empirical mean times sqrt(n)


def _only_where(need: jax.Array, fn, like: jax.Array) -> jax.Array:
    """fn() where `need`, else 0; under vmap fn runs once if any seed needs it, else not at all.

    (A `lax.cond` on a batched predicate would run both branches for every seed; a one-shot
    `while_loop` runs its body only while some lane still needs it.)
    """

    def body(carry):
        _, value = carry
        return jnp.zeros_like(need), jnp.where(need, fn(), value)

    return jax.lax.while_loop(lambda c: c[0], body, (need, jnp.zeros_like(like)))[1]


def binomial_sum(key: jax.Array, n: jax.Array, mu: jax.Array) -> jax.Array:
    """Binomial(n, mu) as a float (exact sampler); 0 when n == 0."""
    dtype = mu.dtype
    nf = n.astype(dtype)
    degenerate = (n == 0) | (mu <= 0) | (mu >= 1)
    exact = _only_where(
        ~degenerate, lambda: jax.random.binomial(key, nf, jnp.clip(mu, 0.0, 1.0), dtype=dtype), mu
    )
    return jnp.where(degenerate, nf * jnp.clip(mu, 0.0, 1.0), exact)


def bernoulli_sum(
    key: jax.Array, z: jax.Array, n: jax.Array, mu: jax.Array, faithful: bool
) -> jax.Array:
    """Sum of n Bernoulli(mu) rewards: exact, or the authors' Gaussian for n > 1e5 (`faithful`)."""
    if not faithful:
        return binomial_sum(key, n, mu)
    nf = n.astype(mu.dtype)
    approx = n > FAITHFUL_GAUSSIAN_ABOVE
    small = jnp.where(approx, 0, n)
    exact = binomial_sum(key, small, mu)
    return jnp.where(approx, nf * mu + FAITHFUL_SD * jnp.sqrt(nf) * z, exact)


def gaussian_sum(z: jax.Array, n: jax.Array, mu: jax.Array, sigma: float) -> jax.Array:
    """Sum of n N(mu, sigma^2) rewards: n mu + sigma sqrt(n) z (exact)."""
    nf = n.astype(mu.dtype)
    return nf * mu + sigma * jnp.sqrt(nf) * z
