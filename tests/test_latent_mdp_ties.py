"""Tie-breaking of the greedy steps of the latent-MDP learners (`rl.optimistic`, "Ties";
`rl.model_optimistic`, "Ties"): uniformly random among the exact maximisers, never "action 0".

References, independent of the code under test: exact enumeration of the 32-bit words (each
maximiser chosen exactly equally often); the uniform law over the maximisers through Pearson's
chi-square (thresholds at the 10⁻⁴ upper quantile: a fixed key, so each test is deterministic,
and a uniform rule would fail it for a fraction 10⁻⁴ of keys); plain ``argmax`` wherever the
maximum is unique (the former rule); the model's symmetry for a tie in a real plan; a NumPy
value iteration for UCBVI.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import rl.optimistic as opt
from rl import planning as pl
from rl.latent_mdp import LatentMDP
from rl.model_optimistic import (
    LatentModelOptimistic,
    action_orders,
    first_policy_ordered,
    solve_numpy,
)
from rl.optimistic import (
    LatentValueOptimistic,
    argmax_random_ties,
    first_policy,
    level_sizes,
    model_inputs,
    plan_histories,
    plan_nodes,
    ucbvi_policy,
)
from rl.posterior import LatentPSRL

P_FAIL = 1e-4  # chi-square tests reject a uniform rule for this fraction of keys


def chi2_ok(counts) -> bool:
    """Pearson's chi-square against the uniform law over len(counts) cells, at level P_FAIL."""
    counts = np.asarray(counts, float)
    expected = counts.sum() / len(counts)
    x2 = float(((counts - expected) ** 2 / expected).sum())
    return x2 < stats.chi2.ppf(1 - P_FAIL, len(counts) - 1)


def continuous_model(M, S, A, H, seed):
    """Rewards uniform per (m, s, a): no two actions have equal values (almost surely)."""
    rng = np.random.default_rng(seed)
    R = rng.uniform(0, 1, (M, S, A)) / H
    P = rng.dirichlet(np.ones(S), (M, S, A))
    return pl.check_model(rng.dirichlet(np.ones(M)), rng.dirichlet(np.ones(S), M), P, R, H)


def inputs(model, key, counts=None, scale=0.0):
    M, S, A, _ = model.sizes
    n = np.ones((M, S, A)) if counts is None else counts
    m = model
    return model_inputs(
        m.weights, m.init, m.transitions, m.rewards, n, 2.0, scale, key=key, dtype=jnp.float32
    )


# --------------------------------------------------------------------------- the rule itself
def test_each_maximiser_exactly_equally_often_over_the_words():
    """Words 0..11 (a multiple of every c <= 4): each of the c maximisers exactly 12 / c times,
    a non-maximiser never."""
    rows = np.array(
        [[0.3, 0.7, 0.1, 0.2], [0.5, 0.5, 0.1, 0.2], [0.9, 0.1, 0.9, 0.9], [1.0, 1.0, 1.0, 1.0]],
        np.float32,
    )
    bits = jnp.arange(12, dtype=jnp.uint32)
    # one program for the four rows (speed only)
    ties = jax.jit(lambda q, bits: argmax_random_ties(jnp.broadcast_to(q, (12, 4)), bits))
    for q in rows:
        got = np.asarray(ties(q, bits))
        top = np.flatnonzero(q == q.max())
        np.testing.assert_array_equal(np.bincount(got, minlength=4)[top], 12 // len(top))
        assert set(got) == set(top)


def test_tie_frequencies_chi_square_and_no_tie_is_argmax():
    """Random words: the three tied maximisers of (0.5, 0.9, 0.9, 0.9) each ~1/3 (chi-square,
    3·10⁴ draws); the unique maximiser of continuous rows is ``argmax``'s (10⁴ rows)."""
    n = 30_000
    # compiled, one program each instead of op by op (speed only; integer words and indices)
    ties, words = jax.jit(argmax_random_ties), jax.jit(jax.random.bits, static_argnums=(1, 2))
    q = jnp.broadcast_to(jnp.asarray([0.5, 0.9, 0.9, 0.9], jnp.float32), (n, 4))
    got = np.asarray(ties(q, words(jax.random.key(1), (n,), jnp.uint32)))
    counts = np.bincount(got, minlength=4)
    assert counts[0] == 0 and chi2_ok(counts[1:])
    q = jax.random.normal(jax.random.key(2), (10_000, 5))
    bits = words(jax.random.key(3), (10_000,), jnp.uint32)
    np.testing.assert_array_equal(ties(q, bits), jnp.argmax(q, -1))


# --------------------------------------------------------------------------- the history planner
def test_planner_tie_in_a_symmetric_model_is_uniform_over_keys():
    """The guess instance at w = 1/2 (one state, context m pays 1/2 for action m): both first
    actions are optimal with exactly equal values, so over 400 keys each is played ~1/2
    (chi-square; the former rule played action 0 for every key). The value is V* = 3/4 either
    way."""
    R = np.zeros((2, 1, 2))
    R[0, 0, 0] = R[1, 0, 1] = 0.5
    model = pl.check_model([0.5, 0.5], np.ones((2, 1)), np.ones((2, 1, 2, 1)), R, 2)
    keys = jax.random.split(jax.random.key(4), 400)
    plans = jax.jit(jax.vmap(lambda k: plan_histories(inputs(model, k), 2, "none")))(keys)
    first = np.asarray(plans.policy[:, 0])
    assert chi2_ok(np.bincount(first, minlength=2))
    np.testing.assert_allclose(np.asarray(plans.value), 0.75, atol=1e-6)


def test_planner_without_ties_picks_argmax(monkeypatch):
    """Random models with continuous rewards (bonus 0 and Bernstein): at every node whose planned
    values have a unique maximum the plan takes it (the former ``argmax``); at every node the
    action is a maximiser (nodes of belief 0 tie at value 0)."""
    seen = []

    def spy(q, bits):  # records each call's values from the compiled plan
        out = argmax_random_ties(q, bits)
        jax.debug.callback(lambda q, a: seen.append((np.asarray(q), np.asarray(a))), q, out)
        return out

    monkeypatch.setattr(opt, "argmax_random_ties", spy)
    rng = np.random.default_rng(5)
    for seed, kind in [(0, "none"), (1, "bernstein"), (2, "hoeffding")]:
        model = continuous_model(2, 2, 3, 3, seed)
        counts = rng.integers(50, 500, (2, 2, 3))
        seen.clear()
        # a fresh function, so that the spy is traced (not a cached trace of the planner)
        jax.block_until_ready(
            jax.jit(lambda i, kind=kind: plan_histories(i, 3, kind))(
                inputs(model, jax.random.key(seed), counts, 0.01)
            )
        )
        jax.effects_barrier()
        assert len(seen) == 3  # one call per step h
        unique = 0
        for q, a in seen:
            top = q == q.max(-1, keepdims=True)
            assert np.all(top[np.arange(len(a)), a])
            one = top.sum(-1) == 1
            np.testing.assert_array_equal(a[one], q[one].argmax(-1))
            unique += one.sum()
        assert unique > 0


@pytest.mark.parametrize("agent", [LatentValueOptimistic(), LatentPSRL()])
def test_first_plan_is_the_planner_on_the_all_unknown_model_and_uniform(agent):
    """Before any data every value is clipped at 1 and every action ties: the agent's first plan
    equals `plan_histories` on its all-unknown inputs (same words), and its actions over the
    S (A M S)^(h-1) nodes are uniform over A = 3 (chi-square)."""
    env = LatentMDP(num_contexts=2, num_states=2, num_actions=3, episode_length=3, instance_seed=0)
    spec = env.spec(env.default_params(), 10)
    init = jax.jit(lambda key: agent.init(key, spec))  # compiled: 5x faster than op by op
    st = init(jax.random.key(6))
    H = spec.episode_length
    inputs = jax.jit(agent.plan_inputs, static_argnums=1)(st, H)  # compiled: speed only
    again = jax.jit(plan_histories, static_argnums=(1, 2))(inputs, H, "none")
    np.testing.assert_array_equal(np.asarray(st.plan.policy), np.asarray(again.policy))
    pol = np.asarray(st.plan.policy)
    assert len(pol) == plan_nodes(2, 2, 3, 3) and chi2_ok(np.bincount(pol, minlength=3))
    other = init(jax.random.key(7))
    assert not np.array_equal(np.asarray(other.plan.policy), pol)  # the agent's own key


def test_first_policy_levels_use_the_plan_words():
    """`first_policy` level by level: the words of `tie_key(key, h)` modulo A (all A tie)."""
    key = jax.random.key(8)
    sizes = level_sizes(2, 2, 3, 3)
    # compiled, one program each instead of op by op (speed only; integer words)
    pol = np.asarray(jax.jit(first_policy, static_argnums=(1, 2, 3, 4))(key, 2, 2, 3, 3))
    words = jax.jit(
        lambda key: [
            jax.random.bits(opt.tie_key(key, h), (N,), jnp.uint32) for h, N in enumerate(sizes)
        ]
    )(key)
    start = 0
    for N, bits in zip(sizes, words, strict=True):
        np.testing.assert_array_equal(pol[start : start + N], np.asarray(bits) % 3)
        start += N


# --------------------------------------------------------------------------- UCBVI
def _vi_argmax(counts, reward_sum, H):
    """NumPy value iteration with argmax (bonus 0), the reference for untied values."""
    n = counts.sum(-1)
    P = counts / n[..., None]
    r = reward_sum / n
    V, pol = np.zeros(counts.shape[0]), []
    for _ in range(H):
        Q = np.minimum(1.0, r + P @ V)
        pol.append(Q.argmax(-1))
        V = Q.max(-1)
    return np.array(pol[::-1])


def test_ucbvi_ties_uniform_and_untied_is_argmax():
    """No data: every Q is clipped at 1, so over 300 keys the (h, s) actions are uniform over
    A = 3 (chi-square over the 300·H·S draws); continuous data and no bonus: NumPy's argmax."""
    S, A, H = 2, 3, 4
    z = jnp.zeros((S, A, S), jnp.int32)
    keys = jax.random.split(jax.random.key(9), 300)
    # compiled, one program each instead of op by op (speed only)
    pols = jax.jit(jax.vmap(lambda k: ucbvi_policy(z, jnp.zeros((S, A)), H, 0, 0.1, 1.0, k)))(keys)
    assert chi2_ok(np.bincount(np.asarray(pols).ravel(), minlength=A))
    rng = np.random.default_rng(10)
    counts = rng.integers(1, 50, (S, A, S))
    rsum = rng.uniform(0, 0.2, (S, A)) * counts.sum(-1)
    pol = jax.jit(ucbvi_policy, static_argnums=2)(
        jnp.asarray(counts), jnp.asarray(rsum, jnp.float32), H, 10, 0.1, 0.0, jax.random.key(0)
    )
    np.testing.assert_array_equal(np.asarray(pol), _vi_argmax(counts, rsum, H))


# --------------------------------------------------------------------------- model-optimistic
def _planned(pol: np.ndarray, M: int, S: int, A: int, H: int) -> np.ndarray:
    """The nodes `solve_numpy` plans when every context pays the same reward (one reward class,
    0): the S roots, then the children (a, 0, s') of each planned node's action a."""
    offsets = np.cumsum([0, *level_sizes(M, S, A, H)])
    mask = np.zeros(offsets[-1], bool)
    nodes = np.arange(S)
    for h in range(H):
        mask[offsets[h] + nodes] = True
        a = pol[offsets[h] + nodes]
        nodes = ((nodes * A * M + a * M)[:, None] * S + np.arange(S)).ravel()
    return mask


def test_model_optimistic_orders_and_first_plan():
    """M = S = A = 2, H = 4 (1170 nodes): `action_orders` rows are permutations with a uniform
    first action (chi-square over the nodes); `solve_numpy` on the all-unknown model (every
    vector all ones) plays each node's first action on the nodes it plans, and the agent's
    first plan is that policy for the key `plan_inputs` gives it."""
    M, S, A, H = 2, 2, 2, 4
    total = plan_nodes(M, S, A, H)
    key = jax.random.key(11)
    order = np.asarray(action_orders(key, total, A))
    np.testing.assert_array_equal(np.sort(order, 1), np.broadcast_to(np.arange(A), (total, A)))
    assert chi2_ok(np.bincount(order[:, 0], minlength=A))
    P = np.full((M, S, A, S), 1.0 / S)
    w, nu, R, n = np.full(M, 0.5), np.full((M, S), 0.5), np.ones((M, S, A)), np.zeros((M, S, A))
    pol, v = solve_numpy(w, nu, P, R, n, 2.0, 1.0, H, "bernstein", order)
    assert v == 1.0
    mask = _planned(pol, M, S, A, H)
    first = np.asarray(first_policy_ordered(key, M, S, A, H))
    np.testing.assert_array_equal(pol[mask], first[mask])
    env = LatentMDP(num_contexts=M, num_states=S, num_actions=A, episode_length=H, instance_seed=0)
    st = LatentModelOptimistic().init(key, env.spec(env.default_params(), 10))
    expect = first_policy_ordered(jax.random.fold_in(key, 0), M, S, A, H)
    np.testing.assert_array_equal(np.asarray(st.plan.policy), np.asarray(expect))


@pytest.mark.parametrize("kind", ["none", "hoeffding"])
def test_model_optimistic_without_ties_unchanged(kind):
    """Continuous rewards, no exact ties: any priority order gives the plan and value of the
    former order 0..A−1."""
    M, S, A, H = 2, 2, 2, 3
    model = continuous_model(M, S, A, H, 12)
    n = np.full((M, S, A), 400.0)
    ref_pol, ref_v = solve_numpy(*model[:4], n, 2.0, 0.05, H, kind)
    for seed in range(3):
        order = np.asarray(action_orders(jax.random.key(seed), plan_nodes(M, S, A, H), A))
        pol, v = solve_numpy(*model[:4], n, 2.0, 0.05, H, kind, order)
        np.testing.assert_array_equal(pol, ref_pol)
        assert v == ref_v
