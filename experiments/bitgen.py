"""The engine's bulk generator: xoshiro128++ streams, each seeded by threefry.

On the CPU, `jax.random`'s threefry spends a 20-round Threefry-2x32 block on every 32-bit word
(about 20-30 ns a word here), and most of a Thompson-sampling or Gaussian-noise step is spent
drawing. The engine's per-step draws (`experiments.rollout.draw`, for ``uniform`` and
``normal`` draws) therefore come from xoshiro128++ (Blackman & Vigna, "Scrambled linear
pseudorandom number generators", ACM TOMS 47(4), 2021, §4.2 and §10: 128-bit state, the ``++``
scrambler rotl(s0 + s3, 7) + s0; it passes BigCrush), which costs a few integer operations a
word and vectorises across streams:

* a draw of `length` steps and `width` numbers per step runs `width` independent streams side
  by side for `length` sequential steps (the engine: `length` = 100, one block of steps);
* each stream's 128-bit state is four words of ``jax.random.bits`` of the draw's own key (a
  threefry key folded in from the seed, the block, the component and the draw's name), so
  streams are as independent as threefry's outputs, and the all-zero state (probability
  2^-128) is replaced by a fixed non-zero one;
* the same key always gives the same words (deterministic, on every backend).

Transforms (`uniform`, `normal`; float32 from one word, float64 from two):

* uniform: k 2^-b with k uniform on {0, ..., 2^b - 1}, b = 24 (float32) or 53 (float64): [0, 1);
* normal: inversion (Devroye, "Non-Uniform Random Variate Generation", 1986, §II.2.1),
  Z = √2 erfinv(V) with V = 2U - 1 taken on the midpoints (k + 1/2) 2^-b, so V is an odd
  multiple of 2^-b in (-1, 1), exactly symmetric about 0 and never ±1 (|Z| < 5.5 in float32).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

NAME = "xoshiro128++ streams seeded by threefry2x32"
_U32 = jnp.uint32
_FALLBACK_STATE = (0x9E3779B9, 0x243F6A88, 0xB7E15162, 0x6A09E667)  # for the all-zero state


def _rotl(x: jax.Array, k: int) -> jax.Array:
    return (x << _U32(k)) | (x >> _U32(32 - k))


def xoshiro128pp(state: tuple[jax.Array, ...]) -> tuple[tuple[jax.Array, ...], jax.Array]:
    """One step of xoshiro128++ (Blackman & Vigna 2021): (next state, output word)."""
    s0, s1, s2, s3 = state
    out = _rotl(s0 + s3, 7) + s0
    t = s1 << _U32(9)
    s2 = s2 ^ s0
    s3 = s3 ^ s1
    s1 = s1 ^ s2
    s0 = s0 ^ s3
    s2 = s2 ^ t
    s3 = _rotl(s3, 11)
    return (s0, s1, s2, s3), out


def words(key: jax.Array, length: int, width: int) -> jax.Array:
    """(length, width) uint32 words: column j is stream j's first `length` outputs."""
    seed = jax.random.bits(key, (4, width), jnp.uint32)
    zero = jnp.all(seed == 0, axis=0)
    state = tuple(jnp.where(zero, _U32(f), seed[i]) for i, f in enumerate(_FALLBACK_STATE))

    def body(s, _):
        return xoshiro128pp(s)

    _, out = jax.lax.scan(body, state, None, length=length, unroll=min(8, length))
    return out


def _words_per_value(dtype) -> int:
    return 2 if jnp.dtype(dtype) == jnp.float64 else 1


def _grid(w: jax.Array, dtype) -> jax.Array:
    """k 2^-b in [0, 1) from the last axis' words (1 for float32, 2 for float64)."""
    if jnp.dtype(dtype) == jnp.float64:
        hi, lo = (w[..., 0] >> 11).astype(jnp.float64), w[..., 1].astype(jnp.float64)
        return (hi * 2.0**32 + lo) * 2.0**-53
    return (w[..., 0] >> 8).astype(jnp.float32) * np.float32(2.0**-24)


def _symmetric(w: jax.Array, dtype) -> jax.Array:
    """2U - 1 for U on the midpoints (k + 1/2) 2^-b: odd multiples of 2^-b in (-1, 1)."""
    if jnp.dtype(dtype) == jnp.float64:
        k = (w[..., 0] >> 12).astype(jnp.float64) * 2.0**32 + w[..., 1].astype(jnp.float64)
        return (2.0 * k + (1.0 - 2.0**52)) * 2.0**-52
    odd = ((w[..., 0] >> 7) | 1).astype(jnp.int32) - (1 << 24)  # 2k + 1 - 2^24
    return odd.astype(jnp.float32) * np.float32(2.0**-24)


def _draw_words(key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
    """Words for `shape` (leading axis: sequential steps), a last axis of 1 or 2 per value."""
    length, rest = shape[0], shape[1:]
    per = _words_per_value(dtype)
    width = int(np.prod(rest, dtype=np.int64)) * per
    return words(key, length, width).reshape(length, *rest, per)


def uniform(key: jax.Array, shape: tuple[int, ...], dtype=None) -> jax.Array:
    """U[0, 1) of `shape` (its first axis the sequential one; see the module docstring)."""
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    return _grid(_draw_words(key, shape, dtype), dtype).astype(dtype)


def normal(key: jax.Array, shape: tuple[int, ...], dtype=None) -> jax.Array:
    """N(0, 1) of `shape` by inversion, √2 erfinv(V) (see the module docstring)."""
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    v = _symmetric(_draw_words(key, shape, dtype), dtype)
    return (np.sqrt(2.0).astype(v.dtype) * jax.lax.erf_inv(v)).astype(dtype)
