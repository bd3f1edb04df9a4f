"""Streaming-MAB instances: the arm means in stream order, generated lazily per seed.

Wang (ICML 2023, arXiv:2306.02208) experiments, as in the authors' released code
(`clear_cut_setting`, `mix_in_setting` in `test.py`/`streamingMAB.py` of
github.com/jhwjhw0123/streaming-regret-minimization-MABs):

* ``clear_cut``: K-1 means i.i.d. TruncNormal(0.5, 0.1, [0, 0.8]) plus one arm at 0.82;
* ``mix_in``: K means i.i.d. Uniform(0, 1);
* ``lower_bound``: a hard family for the Omega(K^{1/3} T^{2/3}) lower bound (Wang, ICML 2023,
  abstract). **Reconstructed: not stated in the paper.** This construction is ours (it realises the
  balancing argument K/eps^2 = T eps), not read in the paper: body arms at 1/2, one of them (at a
  uniform position, present with probability `p_special`) at 1/2 + eps with
  eps = c (K/T)^{1/3}; the last arm ("tail") at `tail_low` or `tail_high` with probability 1/2;
* ``explicit``: means given in the config.

Lazy generation. A uniformly random order of i.i.d. means is again i.i.d., so for the generated
instances the mean at stream position i is drawn from ``fold_in(key, i)``; only the planted arms
(the 0.82 arm, the special and tail arms) get explicit positions, and ``best_last``/``best_first``
swap the best arm to an end. The environment state therefore holds a key and a few scalars, not
K means (the engine selects over the whole state every step, so a (K,) array would cost O(K) per
step). Explicit means are permuted through a (K,) permutation held in the state.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from experiments import threefry as bits

KINDS = ("clear_cut", "mix_in", "lower_bound", "explicit")
ORDERS = ("random", "given", "best_last", "best_first")


class InstanceState(NamedTuple):
    """Per-seed instance: enough to compute the mean at any stream position."""

    key: jax.Array  # key of the i.i.d. base draws
    perm: jax.Array  # explicit: (K,) stream position -> index into params.means; else (0,)
    planted_pos: jax.Array  # (2,) positions with a planted mean (-1: none)
    planted_mean: jax.Array  # (2,)
    swap: jax.Array  # (2,) two positions whose base draws are exchanged (-1: none)
    best: jax.Array  # () mu*
    second: jax.Array  # () second-largest mean (mu* if tied)


class InstanceConfig(NamedTuple):
    """Static description of an instance family (hashable; part of the env)."""

    kind: str
    K: int
    horizon: int
    order: str
    best_mean: float = 0.82
    tn_mean: float = 0.5
    tn_sd: float = 0.1
    tn_low: float = 0.0
    tn_high: float = 0.8
    lb_c: float = 1.0
    lb_p_special: float = 0.5
    lb_tail_low: float = 0.0
    lb_tail_high: float = 1.0


def _base(cfg: InstanceConfig, key: jax.Array, j: jax.Array, dtype) -> jax.Array:
    """The i.i.d. base mean of position j (before planting): a draw from ``fold_in(key, j)``
    (`bits`: `jax.random`'s values, computed without its per-hash loops)."""
    if cfg.kind not in ("clear_cut", "mix_in"):
        return jnp.full((), 0.5, dtype)  # lower_bound body
    k = bits.fold_in(bits.key_data(key), j)
    if cfg.kind == "mix_in":
        return bits.uniform(k, (), dtype)
    lo = (cfg.tn_low - cfg.tn_mean) / cfg.tn_sd
    hi = (cfg.tn_high - cfg.tn_mean) / cfg.tn_sd
    z = bits.truncated_normal(k, lo, hi, dtype)
    return jnp.clip(cfg.tn_mean + cfg.tn_sd * z, cfg.tn_low, cfg.tn_high)


def mean_at(cfg: InstanceConfig, inst: InstanceState, means: jax.Array, i: jax.Array) -> jax.Array:
    """Mean of the arm at stream position i (0-based)."""
    dtype = jnp.result_type(float)
    if cfg.kind == "explicit":
        return means[inst.perm[i]].astype(dtype)
    j = jnp.where(i == inst.swap[0], inst.swap[1], jnp.where(i == inst.swap[1], inst.swap[0], i))
    m = _base(cfg, inst.key, j, dtype)
    m = jnp.where(i == inst.planted_pos[0], inst.planted_mean[0], m)
    return jnp.where(i == inst.planted_pos[1], inst.planted_mean[1], m)


def lower_bound_eps(cfg: InstanceConfig) -> float:
    """eps = c (K/T)^{1/3} of the lower-bound family (reconstructed: not stated in the paper)."""
    return cfg.lb_c * (cfg.K / cfg.horizon) ** (1.0 / 3.0)


def init_instance(cfg: InstanceConfig, key: jax.Array, means: jax.Array) -> InstanceState:
    """Draw one seed's instance (order, planted arms) and its best and second-best means."""
    dtype = jnp.result_type(float)
    K = cfg.K
    k_base, k_pos, k_b1, k_b2 = jax.random.split(key, 4)
    none2 = jnp.full((2,), -1, jnp.int32)
    zero2 = jnp.zeros((2,), dtype)
    perm = jnp.zeros((0,), jnp.int32)
    planted_pos, planted_mean, swap = none2, zero2, none2
    if cfg.kind == "explicit":
        best_idx = jnp.argmax(means)
        if cfg.order == "given":
            perm = jnp.arange(K, dtype=jnp.int32)
        else:
            perm = jax.random.permutation(k_pos, K).astype(jnp.int32)
            end = {"random": -1, "best_last": K - 1, "best_first": 0}[cfg.order]
            if end >= 0:  # swap the best arm's position with the end position
                at = jnp.argmax(perm == best_idx)
                other = perm[end]
                perm = perm.at[at].set(other).at[end].set(best_idx.astype(jnp.int32))
    elif cfg.kind == "clear_cut":
        pos = {"best_last": K - 1, "best_first": 0}.get(cfg.order)
        pos = jax.random.randint(k_pos, (), 0, K) if pos is None else jnp.asarray(pos)
        planted_pos = none2.at[0].set(pos.astype(jnp.int32))
        planted_mean = zero2.at[0].set(cfg.best_mean)
    elif cfg.kind == "mix_in":
        if cfg.order in ("best_last", "best_first"):
            base = jax.vmap(lambda j: _base(cfg, k_base, j, dtype))(jnp.arange(K))
            end = K - 1 if cfg.order == "best_last" else 0
            swap = jnp.stack([jnp.argmax(base).astype(jnp.int32), jnp.int32(end)])
    else:  # lower_bound (our reconstruction): special body arm (maybe absent) and a random tail
        eps = lower_bound_eps(cfg)
        special = jax.random.randint(k_pos, (), 0, K - 1).astype(jnp.int32)
        present = jax.random.uniform(k_b1) < cfg.lb_p_special
        tail = jnp.where(jax.random.uniform(k_b2) < 0.5, cfg.lb_tail_low, cfg.lb_tail_high)
        planted_pos = jnp.stack([jnp.where(present, special, -1), jnp.int32(K - 1)])
        planted_mean = jnp.stack([jnp.asarray(0.5 + eps, dtype), tail.astype(dtype)])
    inst = InstanceState(
        k_base, perm, planted_pos, planted_mean, swap, jnp.zeros((), dtype), jnp.zeros((), dtype)
    )
    all_means = jax.vmap(lambda i: mean_at(cfg, inst, means, i))(jnp.arange(K))
    top2 = jax.lax.top_k(all_means, 2)[0]
    return inst._replace(best=top2[0], second=top2[1])


def all_means(cfg: InstanceConfig, inst: InstanceState, means: jax.Array) -> jax.Array:
    """All K means in stream order (for tests and analysis; O(K))."""
    return jax.vmap(lambda i: mean_at(cfg, inst, means, i))(jnp.arange(cfg.K))
