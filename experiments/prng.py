"""Fast random samples on the CPU: Philox4x32-10 bits in bulk, turned into uniform, normal,
exponential and Laplace samples by exact transforms. Pure JAX functions with `jax.random`'s
signature style (``normal(key, shape, dtype)``), jit- and vmap-able, deterministic: the same key
and shape give bit-identical samples.

Why not `jax.random` directly: with the default threefry implementation in its partitionable
mode, `jax.random.bits` spends one Threefry-2x32 block (20 rounds) on each 32-bit word and
XORs its two output words together; on the CPU that, not the transform, is most of the ~20 ns
that a `jax.random.normal` costs (`bench/prng.py` measures it).

**Bits.** A key whose data is two 32-bit words (threefry, the default, and philox4x32 keys)
keys Philox4x32-10 (Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy as 1, 2, 3",
SC 2011, §3.2 and Fig. 2; checked against the Random123 known-answer vectors in
`tests/test_prng.py`): the counter of hash i is (i, 0, 0, TAG) and all four output words are used,
so sample j of a 32-bit transform uses word j mod 4 of hash j div 4 (a prefix of a longer draw
is the shorter draw). These are other bits than `jax.random`'s from the same key, with the same
rule: use a key once (for samples, or for `split`/`fold_in`, not both). Keys of other
implementations (rbg, unsafe_rbg) draw their words with `jax.random.bits`.

**Transforms** (float32: 24 random bits per sample, one word; float64: 52 or 53 bits, two
words; float16 and bfloat16: computed in float32, then rounded):

* `uniform`: k 2^-24 for k uniform on {0, ..., 2^24 - 1}: [0, 1) (JAX and NumPy use the same
  grid), scaled to [minval, maxval);
* `normal`: the inversion method (Devroye, "Non-Uniform Random Variate Generation", Springer
  1986, §II.2.1, Theorem 2.1): Z = Φ^-1(U) = √2 erfinv(2U - 1) with U on the midpoints
  (k + 1/2) 2^-24, so V = 2U - 1 is an odd multiple of 2^-24 in (-1, 1), exactly symmetric
  (|Z| <= Φ^-1(1 - 2^-25) = 5.4; `jax.random.normal` also inverts erf). Box & Muller ("A note on
  the generation of random normal deviates", Ann. Math. Stat. 29(2), 1958) gives two normals
  per pair of words, but XLA's CPU sine and cosine cost more than erfinv (`bench/prng.py`);
* `exponential`: E = -log(1 - U) = -log1p(-U), U on the grid of `uniform` (inversion; Devroye
  1986, §II.2.1), so 1 - U is in (0, 1] and 0 <= E <= 24 log 2 = 16.6;
* `laplace`: L = -sign(V) log1p(-|V|), V symmetric as in `normal`: a fair sign times an
  exponential (inversion of the Laplace CDF), density e^-|x| / 2.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Shape = tuple[int, ...]

# Philox4x32 constants (Salmon et al., SC 2011, §3.2; Random123 philox.h)
PHILOX_M = (np.uint32(0xD2511F53), np.uint32(0xCD9E8D57))  # round multipliers
PHILOX_W = (np.uint32(0x9E3779B9), np.uint32(0xBB67AE85))  # Weyl key increments
PHILOX_ROUNDS = 10
TAG = np.uint32(0x70726E67)  # counter word 3 ("prng"): away from jax's own philox counters


def mulhi_split(x: jax.Array, m: np.uint32) -> jax.Array:
    """The high 32 bits of the 64-bit product x m (uint32 `x`, constant `m`), exactly, in uint32
    arithmetic only: the schoolbook product of 16-bit halves with the carries of the middle
    column (Warren, "Hacker's Delight", 2nd ed., Addison-Wesley 2012, §8-2, Fig. 8-2 `mulhu`).
    No partial sum overflows: x_hi m_lo + (x_lo m_lo >> 16) <= (2^16 - 1)^2 + 2^16 - 1 < 2^32,
    and likewise for the second column sum."""
    m = int(m)
    m_lo, m_hi = np.uint32(m & 0xFFFF), np.uint32(m >> 16)
    x = jnp.asarray(x, jnp.uint32)
    x_lo, x_hi = x & np.uint32(0xFFFF), x >> np.uint32(16)
    u = x_hi * m_lo + ((x_lo * m_lo) >> np.uint32(16))
    v = x_lo * m_hi + (u & np.uint32(0xFFFF))
    return x_hi * m_hi + (u >> np.uint32(16)) + (v >> np.uint32(16))


def mulhi(x: jax.Array, m: np.uint32) -> jax.Array:
    """The high 32 bits of x m: `lax.mulhi` (one widened multiply on XLA:CPU), except inside
    `jax.shard_map` (a mesh axis in manual mode while tracing), where ``chlo.mulhi`` does not
    lower on this JAX ("Unable to convert MHLO to StableHLO"): there `mulhi_split`, the same
    bits with four 16-bit products (float32 normals at about 1.7x the CPU seconds; `bench/prng.py`,
    the ``prng-split`` rows; bench/results.md, 2026-12-04)."""
    if jax.sharding.get_abstract_mesh().manual_axes:
        return mulhi_split(x, m)
    return lax.mulhi(x, jnp.full_like(x, m))


def philox4x32(
    key: tuple[jax.Array, jax.Array], counter: tuple[jax.Array, ...], rounds: int = PHILOX_ROUNDS
) -> tuple[jax.Array, ...]:
    """The Philox4x32-R bijection of a 4-word counter under a 2-word key (uint32 arrays,
    broadcast): R rounds of two 32x32 -> 64-bit products, the key bumped by the Weyl constants
    before every round but the first (Salmon et al., SC 2011, §3.2)."""
    k0, k1 = key
    x0, x1, x2, x3 = counter
    for r in range(rounds):
        if r:
            k0, k1 = k0 + PHILOX_W[0], k1 + PHILOX_W[1]
        hi0, lo0 = mulhi(x0, PHILOX_M[0]), x0 * PHILOX_M[0]
        hi1, lo1 = mulhi(x2, PHILOX_M[1]), x2 * PHILOX_M[1]
        x0, x1, x2, x3 = hi1 ^ x1 ^ k0, lo1, hi0 ^ x3 ^ k1, lo0
    return x0, x1, x2, x3


def _key_data(key: jax.Array) -> jax.Array:
    """The raw uint32 words of a typed key (or a legacy uint32 key itself)."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape:
            raise ValueError(f"expected a single key, got a key array of shape {key.shape}")
        return jax.random.key_data(key)
    if key.shape != (2,) or key.dtype != jnp.uint32:
        raise ValueError(f"expected a single key, got an array {key.dtype}{list(key.shape)}")
    return key


def bits(key: jax.Array, n: int) -> jax.Array:
    """`n` uniform uint32 words (module docstring: Philox4x32-10, word j from hash j div 4)."""
    data = _key_data(key)
    if data.shape != (2,):  # rbg / unsafe_rbg keys: their own generator
        return jax.random.bits(key, (n,), jnp.uint32)
    hashes = -(-n // 4)
    if hashes >= 2**32:
        raise ValueError(f"at most 2^34 words per key (asked for {n})")
    i = lax.iota(jnp.uint32, hashes)
    zero = jnp.zeros_like(i)
    out = philox4x32((data[0], data[1]), (i, zero, zero, jnp.full_like(i, TAG)))
    return jnp.stack(out, axis=-1).reshape(-1)[:n]


def _dtype(dtype: Any) -> tuple[np.dtype, np.dtype]:
    """(the dtype asked for, the dtype computed in: float32 or float64)."""
    dtype = jax.dtypes.canonicalize_dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"dtype: a floating-point dtype is required (got {dtype})")
    return dtype, np.dtype(np.float64 if dtype == np.float64 else np.float32)


def _grid(key: jax.Array, n: int, work: np.dtype) -> jax.Array:
    """k 2^-b, k uniform on {0, ..., 2^b - 1}: b = 24 (float32, one word) or 53 (float64, two
    words: 21 high bits of the first, all 32 of the second); exact in `work`."""
    if work == np.float32:
        return (bits(key, n) >> 8).astype(jnp.float32) * np.float32(2.0**-24)
    w = bits(key, 2 * n).reshape(n, 2)
    hi, lo = (w[:, 0] >> 11).astype(jnp.float64), w[:, 1].astype(jnp.float64)
    return (hi * 2.0**32 + lo) * 2.0**-53


def _symmetric(key: jax.Array, n: int, work: np.dtype) -> jax.Array:
    """V = 2U - 1 for U on the midpoints (k + 1/2) 2^-b: odd multiples of 2^-b in (-1, 1), each
    with probability 2^-b (b = 24, float32; 52, float64); exact in `work`, so the law of V is
    exactly symmetric about 0."""
    if work == np.float32:
        odd = ((bits(key, n) >> 7) | 1).astype(jnp.int32) - (1 << 24)  # 2k + 1 - 2^24
        return odd.astype(jnp.float32) * np.float32(2.0**-24)
    w = bits(key, 2 * n).reshape(n, 2)
    k = (w[:, 0] >> 12).astype(jnp.float64) * 2.0**32 + w[:, 1].astype(jnp.float64)  # 52 bits
    return (2.0 * k + (1.0 - 2.0**52)) * 2.0**-52


def _finish(x: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
    return x.reshape(shape).astype(dtype)


def uniform(
    key: jax.Array,
    shape: Shape = (),
    dtype: Any = float,
    minval: float | jax.Array = 0.0,
    maxval: float | jax.Array = 1.0,
) -> jax.Array:
    """Uniform on [minval, maxval) (module docstring); as `jax.random.uniform`, values are
    clamped below at minval after scaling."""
    dtype, work = _dtype(dtype)
    shape = tuple(shape)
    u = _grid(key, math.prod(shape), work).reshape(shape)
    lo, hi = jnp.asarray(minval, work), jnp.asarray(maxval, work)
    return jnp.maximum(lo, u * (hi - lo) + lo).astype(dtype)


def normal(key: jax.Array, shape: Shape = (), dtype: Any = float) -> jax.Array:
    """Standard normal N(0, 1) by inversion, √2 erfinv(V) (module docstring)."""
    dtype, work = _dtype(dtype)
    shape = tuple(shape)
    v = _symmetric(key, math.prod(shape), work)
    return _finish(np.sqrt(2.0).astype(work) * lax.erf_inv(v), shape, dtype)


def exponential(key: jax.Array, shape: Shape = (), dtype: Any = float) -> jax.Array:
    """Standard exponential (rate 1) by inversion, -log1p(-U) (module docstring)."""
    dtype, work = _dtype(dtype)
    shape = tuple(shape)
    return _finish(-jnp.log1p(-_grid(key, math.prod(shape), work)), shape, dtype)


def laplace(key: jax.Array, shape: Shape = (), dtype: Any = float) -> jax.Array:
    """Laplace with scale 1 (density e^-|x| / 2, variance 2), -sign(V) log1p(-|V|)."""
    dtype, work = _dtype(dtype)
    shape = tuple(shape)
    v = _symmetric(key, math.prod(shape), work)
    return _finish(-jnp.sign(v) * jnp.log1p(-jnp.abs(v)), shape, dtype)
