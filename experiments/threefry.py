"""`jax.random`'s threefry draws, bit for bit, as straight-line array code.

On the CPU, JAX lowers each Threefry-2x32 hash as a 5-iteration loop (4 rounds per iteration),
so every `jax.random.fold_in` or draw inside a scanned step costs a loop of small kernels, and
each call site compiles one. Components that draw inside a step (the streaming environment and
agents: the mean of the arm read, a coin flip at a stream position, a rejection sampler's
fallback; Thompson sampling's Gamma candidates, `bandits.agents.gamma`) use this; the same hash
(Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011:
Threefry-2x32 with 20 rounds, the rotation constants and key schedule of JAX's implementation) is
written out, so XLA fuses it with its neighbours.

The results are `jax.random`'s for threefry keys with ``jax_threefry_partitionable`` (JAX's
default): ``fold_in(kd, j)`` is ``key_data(jax.random.fold_in(key, j))`` and ``uniform`` is
`jax.random.uniform`, bit for bit; ``truncated_normal`` applies the float operations of
`jax.random.truncated_normal` to those bits (equal when both are compiled; XLA may round a
multiply-add once or twice depending on how it fuses them). Checked in
tests/test_streaming_sampling.py and tests/test_gamma.py. Keys are raw key data, uint32 arrays of
shape (..., 2); the functions broadcast over the leading axes.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = 0x1BD11BDA


def threefry2x32(k1: Array, k2: Array, x1: Array, x2: Array) -> tuple[Array, Array]:
    """The Threefry-2x32 hash (20 rounds) of the counter (x1, x2) under the key (k1, k2)."""
    u32 = lambda v: jnp.asarray(v, jnp.uint32)
    ks = (k1, k2, k1 ^ k2 ^ u32(_PARITY))
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = (x2 << u32(r)) | (x2 >> u32(32 - r))
            x2 = x1 ^ x2
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + u32(i + 1)
    return x1, x2


def key_data(key: Array) -> Array:
    """The raw data (..., 2) of a threefry key (typed or raw)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        impl = str(jax.random.key_impl(key))
        if "threefry" not in impl:
            raise ValueError(f"experiments.threefry: needs threefry keys (got {impl})")
        return jax.random.key_data(key)
    return key


def fold_in(kd: Array, data: Array) -> Array:
    """`jax.random.fold_in` on key data: the hash of the counter (0, data) (data < 2^32)."""
    d = jnp.asarray(data).astype(jnp.uint32)
    a, b = threefry2x32(kd[..., 0], kd[..., 1], jnp.zeros_like(d), d)
    return jnp.stack([a, b], axis=-1)


def _bits(kd: Array, shape: tuple[int, ...], width: int) -> Array:
    """`jax.random.bits` of `width` 32 or 64 for key data kd (...,2): shape (..., *shape)."""
    size = math.prod(shape)
    lead = kd.shape[:-1]
    count = jnp.arange(size, dtype=jnp.uint32).reshape(shape)
    k1 = kd[..., 0].reshape(lead + (1,) * len(shape))
    k2 = kd[..., 1].reshape(lead + (1,) * len(shape))
    b1, b2 = threefry2x32(k1, k2, jnp.zeros_like(count), count)
    if width == 64:
        return (b1.astype(jnp.uint64) << jnp.uint64(32)) | b2.astype(jnp.uint64)
    return b1 ^ b2


def uniform(kd: Array, shape: tuple[int, ...] = (), dtype=None, minval=0.0, maxval=1.0) -> Array:
    """`jax.random.uniform(key, shape, dtype, minval, maxval)` for key data kd (..., 2)."""
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    finfo = jnp.finfo(dtype)
    nbits, nmant = finfo.bits, finfo.nmant
    if nbits not in (32, 64):
        raise ValueError(f"experiments.threefry.uniform: float32 or float64 (got {dtype})")
    uint = jnp.uint64 if nbits == 64 else jnp.uint32
    bits = _bits(kd, shape, nbits)
    one = np.array(1.0, dtype).view(np.dtype(uint))
    float_bits = (bits >> uint(nbits - nmant)) | uint(one)
    floats = jax.lax.bitcast_convert_type(float_bits, dtype) - jnp.asarray(1.0, dtype)
    lo, hi = jnp.asarray(minval, dtype), jnp.asarray(maxval, dtype)
    return jnp.maximum(lo, floats * (hi - lo) + lo)


def truncated_normal(kd: Array, lower: float, upper: float, dtype=None) -> Array:
    """`jax.random.truncated_normal(key, lower, upper, (), dtype)` for key data kd (..., 2)."""
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    sqrt2 = jnp.asarray(np.sqrt(2), dtype)
    lo, hi = jnp.asarray(lower, dtype), jnp.asarray(upper, dtype)
    a = jax.lax.erf(lo / sqrt2)
    b = jax.lax.erf(hi / sqrt2)
    out = sqrt2 * jax.lax.erf_inv(uniform(kd, (), dtype, a, b))
    inf = jnp.asarray(np.inf, dtype)
    return jnp.clip(out, jax.lax.nextafter(lo, inf), jax.lax.nextafter(hi, -inf))
