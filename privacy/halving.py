"""Sequential Halving and its ε-differentially private version DP-SH (fixed-budget BAI).

Sequential Halving: Karnin, Koren & Somekh, "Almost Optimal Exploration in Multi-Armed
Bandits", ICML 2013, Algorithm 1. With budget T and K arms, S_0 = [K]; for r = 0, ...,
⌈log2 K⌉ - 1: pull each arm of S_r t_r = ⌊T / (|S_r| ⌈log2 K⌉)⌋ times (fresh samples, never
reused in a later round) and keep the ⌈|S_r| / 2⌉ arms of S_r with the largest empirical
means (ties broken uniformly at random: the paper leaves them open, and with Bernoulli
rewards equal sums are frequent; `privacy.fixed_budget.top_mask`); recommend the arm of
S_{⌈log2 K⌉}. The sizes are
|S_r| = ⌈K / 2^r⌉ (`schedule`). Beware the variant that floors the halving and never goes
below two arms: for odd |S_r| it keeps fewer arms and spends the budget differently.

DP-SH: the same schedule with each round's per-arm means released as
mean + Laplace(1/(ε t_r)) (`privacy.fixed_budget.noisy_means`), the private Sequential Halving
baseline of Chen, Karthik, Chee & Tan, ICLR 2024 (§5 [recalled: the paper's text was not
available; its reviewers describe a DP Sequential Halving baseline]). Pure ε-DP with respect
to the K x T reward table, entry-level neighbours (`privacy.fixed_budget`, "Privacy").

Both work on any env whose spec has ``num_arms`` and ``horizon`` and that accepts
``bandits.envs.Pull`` actions (the linear BAI env; the Bernoulli bandit); features are ignored.
On the linear BAI env a round is one step (``bandits.linear_bai.PullAll``: every arm of S_r
its t_r pulls, arm after arm in index order); elsewhere one ``Pull(arm, t_r)`` step per arm of
S_r, the same rounds in the same order (`privacy.fixed_budget.whole_phases`).
Unused budget (fewer than K ⌈log2 K⌉ rounds) is spent after the last round and discarded.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bandits.envs import check_exact_horizon
from experiments.config import ConfigError
from experiments.protocol import step_key
from privacy import fixed_budget as fb


def sizes_of(num_arms: int) -> tuple[int, ...]:
    """(|S_0|, ..., |S_{R-1}|) = ⌈K / 2^r⌉, R = ⌈log2 K⌉ rounds (Karnin et al., Alg. 1)."""
    rounds = max(1, math.ceil(math.log2(num_arms)))
    return tuple(math.ceil(num_arms / 2**r) for r in range(rounds))


def schedule(num_arms: int, horizon: int | jax.Array) -> tuple[tuple[int, ...], Any]:
    """(|S_0|, ..., |S_{R-1}|) and (t_0, ..., t_{R-1}), t_r = ⌊T / (|S_r| R)⌋, R = ⌈log2 K⌉
    (Karnin et al., Alg. 1). `horizon` a Python int, or an int array (then t is one, maybe
    traced: the same floors in integer arithmetic)."""
    sizes = sizes_of(num_arms)
    if isinstance(horizon, int | np.integer):
        return sizes, tuple(int(horizon) // (s * len(sizes)) for s in sizes)
    return sizes, horizon // jnp.asarray([s * len(sizes) for s in sizes], horizon.dtype)


@jax.tree_util.register_static
@dataclass(frozen=True)
class HalvingPlan:
    """The static schedule: sizes |S_r| (a leafless pytree). T and the pulls t_r are in the
    state (arrays: inputs of the engine's programs, so runs at every T share them)."""

    sizes: tuple[int, ...]
    per_arm: bool = False  # one Pull per arm and round (an env without PullAll)


class HalvingState(NamedTuple):
    key: jax.Array  # round r's release key is step_key(key, r), its tie key fb.tie_key(key, r)
    plan: HalvingPlan  # static
    horizon: jax.Array  # () int: T
    pulls: jax.Array  # (R,) int: t_r
    phase: jax.Array  # round r (0-based)
    active: jax.Array  # (K,) bool: S_r
    alloc: jax.Array  # (K,) int: t_r on S_r
    stats: fb.PhaseStats  # this round's counts and sums
    finished: jax.Array
    choice: jax.Array
    releases: jax.Array  # (R, K) the transcript: row r = round r's released means (0: none)


@dataclass(frozen=True)
class SequentialHalving(fb.PhasedAgent):
    """Sequential Halving (Karnin, Koren & Somekh, ICML 2013, Algorithm 1); no privacy."""

    def _release(self, state: HalvingState) -> jax.Array:
        """This round's empirical means (plain: no noise)."""
        return fb.noisy_means(state.stats.sums, state.stats.counts, math.inf, state.key, "research")

    def horizon_inputs(self, spec: Any) -> tuple:
        """Checks K and T on the host (one ConfigError line) before the engine traces `init`
        with T as an input (`experiments.simulate`, "Horizon as an input"); the pulls t_r are
        integer arithmetic on the device; a Bernoulli arm's Pull(arm, n) sum is exact only while
        n <= 2^24 without x64, and n reaches T - t after the last phase (`check_exact_horizon`)."""
        check_exact_horizon(int(spec.horizon))
        k = int(spec.num_arms)
        if k < 2:
            raise ConfigError(f"env: Sequential Halving needs K >= 2 arms (got {k})")
        sizes, pulls = schedule(k, int(spec.horizon))
        if pulls[0] < 1:
            need = k * len(sizes)
            raise ConfigError(
                f"horizon T = {spec.horizon} is smaller than the {need} rounds Sequential"
                f" Halving needs (K ceil(log2 K) = {k} x {len(sizes)}: one pull per arm and round)"
            )
        return ()

    def init(self, key: jax.Array, spec: Any, inputs: tuple | None = None) -> HalvingState:
        """The state before round 0; `spec.horizon` may be traced when `inputs` (the result of
        `horizon_inputs`, checked by the engine) is given."""
        horizon = fb.checked_horizon(self, spec, inputs)
        k = int(spec.num_arms)
        it = jnp.result_type(int)
        sizes, pulls = schedule(k, horizon)
        return HalvingState(
            key=key,
            plan=HalvingPlan(sizes, not fb.whole_phases(spec)),
            horizon=horizon,
            pulls=pulls,
            phase=jnp.zeros((), it),
            active=jnp.ones((k,), bool),
            alloc=jnp.full((k,), pulls[0], it),
            stats=fb.phase_zeros(k),
            finished=jnp.zeros((), bool),
            choice=jnp.zeros((), jnp.int32),
            releases=jnp.zeros((len(sizes), k), jnp.result_type(float)),
        )

    def max_steps(self, spec: Any) -> int:
        """One step per round (per arm and round without `PullAll`), one for the unused
        budget (the engine's chunk size)."""
        sizes = sizes_of(int(spec.num_arms))
        return (len(sizes) if fb.whole_phases(spec) else sum(sizes)) + 2

    def end_phase(self, state: HalvingState) -> HalvingState:
        """Release this round's means, keep the ⌈|S_r|/2⌉ best, allocate t_{r+1} to them."""
        pl = state.plan
        rounds = len(pl.sizes)
        means = self._release(state)
        keep = jnp.asarray([math.ceil(s / 2) for s in pl.sizes])[state.phase]
        ties = fb.tie_key(state.key, state.phase)
        active = fb.top_mask(means, state.active, keep, ties, math.ceil(pl.sizes[0] / 2))
        last = state.phase >= rounds - 1
        nxt = jnp.append(state.pulls[1:], 0)[state.phase]
        k = state.active.shape[0]
        return state._replace(
            phase=state.phase + 1,
            active=active,
            alloc=jnp.where(active & ~last, nxt, 0).astype(state.alloc.dtype),
            stats=fb.phase_zeros(k),
            finished=last,
            choice=jnp.argmax(active).astype(jnp.int32),
            releases=state.releases.at[state.phase].set(means),
        )

    def output(self, state: HalvingState) -> jax.Array:
        return state.choice


@dataclass(frozen=True)
class DPSequentialHalving(fb.PrivateReleases, SequentialHalving):
    """DP-SH: Sequential Halving with each round's means + Laplace(1/(ε t_r)) (module doc)."""

    def horizon_inputs(self, spec: Any) -> tuple:
        self.check_reward_grid(spec)
        return super().horizon_inputs(spec)

    def _release(self, state: HalvingState) -> jax.Array:
        key = step_key(state.key, state.phase)
        stats = state.stats
        return fb.noisy_means(
            stats.sums, stats.counts, self.epsilon, key, self.noise, source=self.source
        )


def sh_error_probability(means, horizon: int) -> float:
    """Exact error probability of `SequentialHalving` on K <= 4 Bernoulli arms (reference).

    Sums over the Binomial(t_r, μ_i) laws of every round's sums: the kept set of each round is
    a function of that round's sums and of the tie-breaking permutation (`kept_sets`: arms
    above the cut are kept, and of the j arms tied at the cut a uniform subset of the places
    left, so a tie of m arms for the last place is won by each with probability 1/m); rounds
    are independent given the kept set. The error is 1[recommendation != argmax μ] (the first
    maximiser, as `bandits.linear_bai.LinearBAI.final_metrics`). For tests (the cost grows like
    Π_r (t_r + 1)^|S_r|).
    """
    from scipy import stats

    mu = np.asarray(means, float)
    k = mu.size
    sizes, pulls = schedule(k, horizon)
    best = int(np.argmax(mu))

    def rec(active: tuple[int, ...], r: int) -> float:
        if r == len(sizes):
            return float(active[0] != best)
        t = pulls[r]
        keep = math.ceil(len(active) / 2)
        pmf = [stats.binom.pmf(np.arange(t + 1), t, mu[i]) for i in active]
        grids = np.meshgrid(*[np.arange(t + 1)] * len(active), indexing="ij")
        sums = np.stack([g.ravel() for g in grids], 1)  # (outcomes, |active|)
        prob = np.ones(sums.shape[0])
        for j in range(len(active)):
            prob *= pmf[j][sums[:, j]]
        laws: dict[tuple[int, ...], float] = {}
        for row, p in zip(sums, prob, strict=True):
            for kept, q in kept_sets(row, keep):
                key = tuple(active[j] for j in kept)
                laws[key] = laws.get(key, 0.0) + p * q
        return sum(p * rec(kept, r + 1) for kept, p in laws.items())

    return rec(tuple(range(k)), 0)


def kept_sets(scores, keep: int) -> list[tuple[tuple[int, ...], float]]:
    """The law of the positions `top_mask` keeps from `scores` under uniformly random tie
    breaking: [(sorted positions kept, probability)]. The arms above the keep-th largest score
    are kept; of the j arms equal to it, every subset of the places left is equally likely
    (a uniform permutation ranks a tied group in uniform order)."""
    s = np.asarray(scores)
    cut = np.sort(s)[::-1][keep - 1]
    above = [int(i) for i in np.flatnonzero(s > cut)]
    tied = [int(i) for i in np.flatnonzero(s == cut)]
    picks = list(itertools.combinations(tied, keep - len(above)))
    return [(tuple(sorted(above + list(c))), 1.0 / len(picks)) for c in picks]
