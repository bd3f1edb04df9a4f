"""Exact long sums in JAX: compensated (Kahan) summation for float32, plain adds otherwise.

A float32 running sum stalls once it reaches 2^24 / increment (e.g. adding 1.0 stops changing the
sum at 16,777,216), which is within reach of a 10^7-round bandit run. Kahan's compensated sum
(Kahan 1965; Higham, "Accuracy and Stability of Numerical Algorithms", §4.3) keeps the error of the
whole sum at O(eps) relative, independent of the number of terms.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class KahanSum(NamedTuple):
    """A running sum `total` with its compensation `comp` (the lost low-order part, negated)."""

    total: jax.Array
    comp: jax.Array


def kahan_zeros(shape: tuple[int, ...] = (), dtype=jnp.float32) -> KahanSum:
    z = jnp.zeros(shape, dtype)
    return KahanSum(z, z)


def kahan_add(acc: KahanSum, x: jax.Array) -> KahanSum:
    """acc + x with compensation: y = x - c; t = s + y; c = (t - s) - y; s = t. Once the sum is
    infinite the compensation is 0 (``(inf - s) - inf`` is NaN: an infinite increment would
    have made the sum NaN, not inf)."""
    y = x - acc.comp
    t = acc.total + y
    return KahanSum(t, jnp.where(jnp.isfinite(t), (t - acc.total) - y, jnp.zeros_like(t)))


def kahan_value(acc: KahanSum) -> jax.Array:
    """The best single-precision estimate of the sum."""
    return acc.total - acc.comp
