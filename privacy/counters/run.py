"""Running counters: releases and noise streams through the protocol (`experiments.rollout`), and
the faster closed forms of the noise paths used by the R2 Monte Carlo, tested against it.

* `releases`: Ŝ_1..Ŝ_T of one counter on one stream, by `rollout` on the fixed-stream
  environment `privacy.continual.continual_fixed`: the counter's own init/act/update with the
  agent key that the engine derives from the run key.
* `noise_streams`: release errors Ŝ_t - S_t of N streams: `rollout` on an all-zero stream
  (``agent=True``; the error does not depend on the data), or `noise_paths` (research default).
* `noise_paths`: research noise paths in bulk, the strategy's `noise_paths` (binary tree and
  Honaker: level by level without a scan; BLT: in blocks of steps; square root: one FFT per
  stream; smooth: bulk draws through `advance`). The same law as the rollout's releases; not the
  same draws, except the square root's, which are the agent's own (tests/test_privacy_counters.py
  checks both).
* `noise_sum_of_squares`: R2's statistic, over chunks of streams where `noise_paths` is
  scan-free.
* `noise_from_draws`: the linear map from given draws to (B z)_t, for tests of which draw feeds
  which node.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from experiments.rollout import rollout
from privacy.continual import ContinualSpec, continual_fixed
from privacy.counters.agent import Counter
from privacy.counters.strategy import Reduce


def _env(spec: ContinualSpec):
    """The fixed-stream environment of `spec`'s shape; the stream itself is its params."""
    return continual_fixed(np.zeros((spec.horizon, spec.d)), bound=spec.bound)


@functools.cache
def _release_fn(counter: Counter, spec: ContinualSpec):
    """jit(run key, stream (T, d)) -> releases (T, d) through `rollout` (one compile per
    counter and spec)."""
    env = _env(spec)

    def run(key, x):
        out = rollout(env, x, counter, key, spec.horizon, emit=lambda tr: tr.action)
        return out.emitted

    return jax.jit(run)


def releases(counter: Counter, spec: ContinualSpec, stream, seed: int = 0) -> np.ndarray:
    """The counter's releases Ŝ_1..Ŝ_T, (T, d) float64, for one given stream x (T, d) or (T,),
    by `rollout` with the run key key(seed)."""
    x = jnp.asarray(stream, jnp.result_type(float)).reshape(spec.horizon, spec.d)
    return np.asarray(_release_fn(counter, spec)(jax.random.key(seed), x), np.float64)


def noise_paths(
    counter: Counter, spec: ContinualSpec, keys: jax.Array, reduce: Reduce | None = None
) -> jax.Array:
    """Research release errors of N streams (`keys`): for each step t, `reduce`(errors of the N
    streams at t, shape (N, d)), stacked (T, ...) (default: the (T, N, d) errors), from the
    strategy's `noise_paths` (a closed form where one exists) and the node scale."""
    if counter.noise != "research":
        raise ValueError("noise_paths: research mode only (secure noise is drawn on the host)")
    reduce = (lambda e: e) if reduce is None else reduce
    scale = jnp.asarray(counter.node_scale(spec), jnp.result_type(float))
    unit = counter.backend.unit
    return counter.strategy.noise_paths(spec, keys, unit, scale, reduce)


def noise_streams(
    counter: Counter, spec: ContinualSpec, keys: jax.Array, agent: bool | None = None
) -> jax.Array:
    """Release errors Ŝ_t - S_t, (N, T, d), of N independent streams (one per key).

    ``agent`` (default for secure mode): `rollout` of the counter on an all-zero stream, vmapped
    over the run keys `keys` (the error does not depend on the data). Otherwise (research
    default) `noise_paths`: the same distribution, much faster (R2).
    """
    if agent is None:
        agent = counter.noise == "secure"
    if not agent:
        return jnp.swapaxes(noise_paths(counter, spec, keys), 0, 1)
    env = _env(spec)
    zero = jnp.zeros((spec.horizon, spec.d), jnp.result_type(float))

    def one(key):
        return rollout(env, zero, counter, key, spec.horizon, emit=lambda tr: tr.action).emitted

    return jax.vmap(one)(keys)


def noise_sum_of_squares(counter: Counter, spec: ContinualSpec, keys: jax.Array) -> jax.Array:
    """Σ over the N streams of the squared release errors, (T, d) float32, research mode: R2's
    statistic. Strategies with a scan-free `noise_paths` (`Strategy.chunk_elements`) run over
    chunks of streams of about that many elements, summed in a scan, so that a chunk's arrays
    stay in the CPU's cache (as the NumPy reference's blocks of streams do): chunks of a size
    that divides N when one is at least half the target, else a last chunk filled up with
    repeats of the first keys, weighted 0. The others take all N streams at once (their scan
    over steps would repeat per chunk)."""
    N, per = keys.shape[0], counter.strategy.chunk_elements
    size = N if per is None else max(1, per // (spec.horizon * spec.d))

    def squares(k: jax.Array, w: jax.Array | None = None) -> jax.Array:
        def reduce(e: jax.Array) -> jax.Array:
            e2 = e.astype(jnp.float32) ** 2
            return jnp.sum(e2 if w is None else w[:, None] * e2, 0)

        return noise_paths(counter, spec, k, reduce)

    if size >= N:
        return squares(keys)
    zero = jnp.zeros((spec.horizon, spec.d), jnp.float32)
    divisor = max(s for s in range(1, size + 1) if N % s == 0)
    if 2 * divisor >= size:
        body = lambda acc, k: (acc + squares(k), None)
        return jax.lax.scan(body, zero, keys.reshape(N // divisor, divisor))[0]
    chunks = -(-N // size)
    pad = chunks * size - N  # < size < N
    padded = jnp.concatenate([keys, keys[:pad]]).reshape(chunks, size)
    weight = (np.arange(chunks * size) < N).astype(np.float32).reshape(chunks, size)
    body = lambda acc, kw: (acc + squares(*kw), None)
    return jax.lax.scan(body, zero, (padded, jnp.asarray(weight)))[0]


def noise_from_draws(counter: Counter, spec: ContinualSpec, draws: jax.Array) -> jax.Array:
    """The release noise (B z)_t, (T, d) in node units, when step t's unit draws are draws[t]
    (shape (T, *draw_shape)): the strategy's `advance` step by step (its own recursion, no
    protocol). A linear function of the draws, for tests of which draw feeds which node."""
    strategy = counter.strategy
    state = strategy.init_state(spec, jnp.result_type(float))

    def body(carry, z):
        t, s = carry
        s, n = strategy.advance(s, t, z)
        return (t + 1, s), n

    return jax.lax.scan(body, (jnp.ones((), jnp.int32), state), draws)[1]
