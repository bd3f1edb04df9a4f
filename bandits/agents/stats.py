"""Per-arm statistics shared by the classic bandit agents.

Counts are integers; reward sums are compensated (Kahan) sums, so a mean stays exact to float
precision after 10^7 pulls. Only the pulled arm changes in a step, so quantities derived from its
statistics (mean, 1/sqrt(n)) are cached and updated for that arm alone.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from bandits.envs import Pull
from experiments.accumulate import KahanSum, kahan_add, kahan_value


class ArmStats(NamedTuple):
    counts: jax.Array  # (K,) int pulls
    sums: KahanSum  # (K,) reward sums
    means: jax.Array  # (K,) cached sums / counts (0 for unpulled arms)


def arm_stats(num_arms: int) -> ArmStats:
    z = jnp.zeros((num_arms,), jnp.result_type(float))
    return ArmStats(jnp.zeros((num_arms,), jnp.result_type(int)), KahanSum(z, z), z)


def pulled(action) -> tuple[jax.Array, jax.Array]:
    """(arm, n) of an action that is an arm index or a `Pull`."""
    if isinstance(action, Pull):
        return action.arm, action.n
    return action, jnp.ones((), jnp.result_type(int))


def write_arm(x: jax.Array, arm, value) -> jax.Array:
    """`x` with entry `arm` set to `value`. A one-entry scatter: under ``vmap`` over seeds it
    writes one entry per lane, where a one-hot select (``where(arange(K) == arm, value, x)``)
    rewrites all K (on the CPU the select was ~3x slower per array at K = 10). `unique_indices`:
    one index per lane, so the batched scatter's (lane, arm) pairs are distinct."""
    return x.at[arm].set(value, unique_indices=True)


def add_reward(stats: ArmStats, action, reward: jax.Array) -> tuple[ArmStats, jax.Array, jax.Array]:
    """Statistics after `action` earned `reward` (a sum for a `Pull`); also the pulled arm and
    its new count (a per-arm quantity derived from the count, such as 1/sqrt(n), is then
    computed for that arm alone and written with `write_arm`)."""
    arm, n = pulled(action)
    # Update the pulled arm's scalars only, then write them back (no K-wide Kahan).
    count = stats.counts[arm] + n.astype(stats.counts.dtype)
    arm_sum = KahanSum(stats.sums.total[arm], stats.sums.comp[arm])
    arm_sum = kahan_add(arm_sum, jnp.asarray(reward, stats.means.dtype))
    sums = KahanSum(
        write_arm(stats.sums.total, arm, arm_sum.total),
        write_arm(stats.sums.comp, arm, arm_sum.comp),
    )
    mean = kahan_value(arm_sum) / count.astype(stats.means.dtype)
    counts = write_arm(stats.counts, arm, count)
    return ArmStats(counts, sums, write_arm(stats.means, arm, mean)), arm, count


def unpulled_first(index: jax.Array, counts: jax.Array) -> jax.Array:
    """The index with +inf for arms never pulled, so argmax plays them first (lowest first)."""
    return jnp.where(counts == 0, jnp.inf, index)
