"""Exact planners for latent MDPs (`rl.planning`) and the instances (`rl.instances`).

References, each independent of the code under test: brute force over every deterministic
history-dependent policy; closed forms on hand-made instances; a plain value-iteration loop
written here for M = 1; per-context value iteration for identifiable contexts; enumeration of
Markov policies. Tolerances are float64 round-off (1e-12 on values <= 1 built from a few
hundred products and sums).
"""

from __future__ import annotations

import numpy as np
import pytest

from experiments.config import ConfigError
from rl import instances
from rl import planning as pl

TOL = 1e-12  # float64 round-off on values in [0, 1] from at most a few thousand operations


def random_model(M, S, A, H, seed, context_rewards=True, degree=None):
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(M))
    nu = rng.dirichlet(np.ones(S), M)
    P = rng.dirichlet(np.ones(S), (M, S, A))
    if degree is not None:  # zero out all but `degree` successors: zero-probability branches
        keep = rng.permuted(np.arange(S)[None].repeat(M * S * A, 0), axis=1)[:, :degree]
        mask = np.zeros((M * S * A, S), bool)
        np.put_along_axis(mask, keep, True, 1)
        P = np.where(mask.reshape(M, S, A, S), P, 0)
        P /= P.sum(-1, keepdims=True)
    if context_rewards:  # three levels: contexts often pay the same (rewards branch partly)
        R = rng.integers(0, 3, (M, S, A)) / (2 * H)
    else:
        R = np.broadcast_to(rng.uniform(0, 1, (S, A)) / H, (M, S, A))
    return pl.check_model(w, nu, P, R, H)


def guess_model(w0=0.5, H=2):
    """One state, two actions; context m pays 1/H for action m. The first reward reveals m."""
    R = np.zeros((2, 1, 2))
    R[0, 0, 0] = R[1, 0, 1] = 1.0 / H
    return pl.check_model([w0, 1 - w0], np.ones((2, 1)), np.ones((2, 1, 2, 1)), R, H)


def all_planners(model):
    return [
        pl.history_tree_value(model),
        pl.belief_value(model),
        pl.alpha_vectors(model)[0],
        pl.optimal_value(*model),
    ]


# --------------------------------------------------------------------------- brute force
@pytest.mark.parametrize(
    "sizes,context_rewards,seed",
    [
        ((2, 2, 2, 2), False, 0),  # 2^10 policies
        ((2, 2, 2, 2), True, 1),  # up to 2^18: r_1 branches the history
        ((2, 1, 2, 3), True, 2),  # one state: information only from rewards
        ((3, 1, 2, 2), True, 3),
    ],
)
def test_planners_agree_with_brute_force(sizes, context_rewards, seed):
    model = random_model(*sizes, seed, context_rewards)
    brute = pl.brute_force_value(model)
    for v in all_planners(model):
        assert v == pytest.approx(brute, abs=TOL)


def test_planners_agree_with_brute_force_when_history_matters():
    model = guess_model(0.3, H=2)
    # closed form: guess the likelier context (0.7), then play the revealed one: 0.7/2 + 1/2
    assert pl.brute_force_value(model) == pytest.approx(0.85, abs=TOL)
    for v in all_planners(model):
        assert v == pytest.approx(0.85, abs=TOL)


@pytest.mark.parametrize("seed", [0, 1])
def test_tree_and_merged_planners_agree_on_larger_instances(seed):
    model = random_model(3, 3, 2, 4, seed, context_rewards=True, degree=2)
    h, b, a = all_planners(model)[:3]
    assert b == pytest.approx(h, abs=TOL) and a == pytest.approx(h, abs=TOL)


# --------------------------------------------------------------------------- reductions
def test_single_context_is_value_iteration():
    model = random_model(1, 4, 3, 5, 7, degree=2)
    P, R = model.transitions[0], model.rewards[0]
    V = np.zeros(4)
    for _ in range(5):  # plain finite-horizon value iteration
        V = np.max(R + P @ V, axis=1)
    want = float(model.init[0] @ V)
    for v in all_planners(model):
        assert v == pytest.approx(want, abs=TOL)


def test_contexts_identifiable_at_the_first_state():
    base = random_model(2, 4, 2, 3, 11, context_rewards=True)
    nu = np.zeros((2, 4))
    nu[0, :2] = [0.4, 0.6]
    nu[1, 2:] = [0.5, 0.5]  # disjoint supports: s_1 reveals the context
    model = base._replace(init=nu)
    want = float(model.weights @ pl.context_values(model)[0])
    for v in all_planners(model):
        assert v == pytest.approx(want, abs=TOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_markov_below_optimal_below_context_oracle(seed):
    model = random_model(2, 2, 2, 3, seed, context_rewards=False, degree=2)
    markov = pl.best_markov_value(model)
    v = pl.optimal_value(*model)
    oracle = float(model.weights @ pl.context_values(model)[0])
    assert markov <= v + TOL and v <= oracle + TOL


def test_strict_gaps_on_the_guess_instance():
    model = guess_model(0.5, H=2)
    # best Markov: a fixed action earns 1/2 each step in half the contexts: 1/2; V* = 3/4; oracle 1
    assert pl.best_markov_value(model) == pytest.approx(0.5, abs=TOL)
    assert pl.optimal_value(*model) == pytest.approx(0.75, abs=TOL)
    assert model.weights @ pl.context_values(model)[0] == pytest.approx(1.0, abs=TOL)


# --------------------------------------------------------------------------- alpha vectors
def test_alpha_recursion_reads_the_next_state():
    """Regression (a subtree value read at the current state instead of the next one): context
    0 moves 0 -> 1 and is paid 1/2 only in state 1; context 1 stays in 0 and is paid nothing.
    Reading the child's alpha at s = 0 would give 0 for context 0."""
    P = np.zeros((2, 2, 1, 2))
    P[0, 0, 0, 1] = P[0, 1, 0, 1] = 1.0
    P[1, 0, 0, 0] = P[1, 1, 0, 1] = 1.0
    R = np.zeros((2, 2, 1))
    R[:, 1, 0] = 0.5
    model = pl.check_model([0.4, 0.6], [[1.0, 0.0], [1.0, 0.0]], P, R, 2)
    v, per_context = pl.alpha_vectors(model)
    np.testing.assert_allclose(per_context, [0.5, 0.0], atol=TOL)
    assert v == pytest.approx(0.2, abs=TOL)


def test_per_context_values_of_the_optimal_policy():
    """α at the root per context = the optimal policy's value in each context (its exact
    evaluation by the history-dependent evaluator, with the policy read off the belief graph)."""
    model = random_model(2, 2, 2, 3, 5, context_rewards=True)
    graph = pl.belief_graph(model)
    actions, _, v = pl.graph_policy(model, graph)
    e1, e2 = pl.graph_moments(model, graph, actions)

    def policy(hist):  # walk the graph along the history
        node = graph.first[hist[0]]
        for h, i in enumerate(range(1, len(hist), 3)):
            a, r, t = hist[i], hist[i + 1], hist[i + 2]
            j = int(np.argmax(model.rewards[:, hist[i - 1], a] == r))
            node = graph.levels[h].child[node, a, j, t]
        return int(actions[len(hist) // 3][node])

    m1, m2 = pl.history_policy_moments(model, policy)
    np.testing.assert_allclose(e1, m1, atol=TOL)
    np.testing.assert_allclose(e2, m2, atol=TOL)
    assert model.weights @ m1 == pytest.approx(v, abs=TOL)
    _, alpha = pl.alpha_vectors(model)
    assert model.weights @ alpha == pytest.approx(v, abs=TOL)


def test_policy_evaluators_agree():
    """The Markov evaluator (backward per context) and the history-dependent one (depth-first
    over histories) on the same policies: a deterministic Markov policy and the uniform one."""
    model = random_model(2, 3, 2, 3, 8, context_rewards=True, degree=2)
    rng = np.random.default_rng(0)
    markov = rng.integers(0, 2, (3, 3))
    det = pl.history_policy_moments(model, lambda hist: markov[len(hist) // 3, hist[-1]])
    for got, want in zip(det, pl.markov_moments(model, markov), strict=True):
        np.testing.assert_allclose(got, want, atol=TOL)
    uniform = pl.history_policy_value(model, lambda hist: np.full(2, 0.5))
    assert uniform == pytest.approx(pl.markov_value(model, np.full((3, 3, 2), 0.5)), abs=TOL)
    assert uniform <= pl.optimal_value(*model) + TOL


# --------------------------------------------------------------------------- beliefs
def test_beliefs_sum_to_one_eliminate_and_never_nan():
    model = guess_model(0.3, H=3)
    b = pl.belief(model, (0,))
    np.testing.assert_allclose(b, [0.3, 0.7], atol=TOL)
    assert pl.belief(model, (0, 0, 1 / 3, 0)).tolist() == [1.0, 0.0]  # reward 1/3: context 0
    assert pl.belief(model, (0, 0, 0.0, 0)).tolist() == [0.0, 1.0]  # no reward: context 1
    impossible = pl.belief(model, (0, 0, 0.5, 0))  # a reward no context pays
    assert impossible.tolist() == [0.0, 0.0]
    graph = pl.belief_graph(model)
    for lv in graph.levels:
        assert np.all(np.isfinite(lv.beliefs))
        np.testing.assert_allclose(lv.beliefs.sum(1), 1.0, atol=TOL)
    # zero-probability branches everywhere (degree 1 of 3): every planner stays finite
    model = random_model(2, 3, 2, 4, 3, context_rewards=True, degree=1)
    assert all(np.isfinite(v) for v in all_planners(model))


def test_lattice_beliefs_merge_exactly_and_stay_polynomial():
    model = instances.lattice(num_states=4, num_actions=2, horizon=40, seed=2)
    graph = pl.belief_graph(model)
    for h, lv in enumerate(graph.levels, 1):
        for s in range(4):
            # posterior odds (w_1/w_2) 3^k with |k| <= h - 1: at most 2h - 1 beliefs per state
            assert (lv.states == s).sum() <= 2 * h - 1
    small = instances.lattice(num_states=4, num_actions=2, horizon=6, seed=2)
    assert pl.belief_value(small) == pytest.approx(pl.history_tree_value(small), abs=TOL)
    # the merged graph is exact: its odds are powers of 3 (p = 3/4 exact in binary)
    odds = graph.levels[5].beliefs[:, 0] / graph.levels[5].beliefs[:, 1]
    k = np.log(odds) / np.log(3)
    np.testing.assert_allclose(k, np.round(k), atol=1e-9)


# --------------------------------------------------------------------------- instances
def test_garnet_degree_and_interpolation_variance():
    for degree in (1, 2, 4):
        m = instances.garnet(num_contexts=2, num_states=5, num_actions=2, horizon=3, degree=degree)
        assert instances.transition_degree(m) == degree
    det = instances.interpolation(horizon=3, epsilon=0.0, seed=4)
    assert instances.transition_degree(det) == 1
    assert abs(instances.var_star(det)) < TOL
    noisy = [
        instances.var_star(instances.interpolation(horizon=3, epsilon=e, seed=4))
        for e in (0.2, 1.0)
    ]
    assert all(v > 1e-6 for v in noisy)
    assert instances.transition_degree(instances.lattice(horizon=3)) == 2


def test_var_star_matches_brute_force_moments():
    """Var* at π*: the graph moments against the history-dependent evaluator written apart,
    and the total variance against the law of total variance."""
    model = random_model(2, 2, 2, 3, 9, context_rewards=True)
    cond = instances.var_star(model, "conditional")
    total = instances.var_star(model, "total")
    graph = pl.belief_graph(model)
    actions, _, _ = pl.graph_policy(model, graph)
    e1, e2 = pl.graph_moments(model, graph, actions)
    w = model.weights
    assert cond == pytest.approx(w @ (e2 - e1**2), abs=TOL)
    between = w @ e1**2 - (w @ e1) ** 2
    assert total == pytest.approx(cond + between, abs=TOL)


def test_var_star_max_over_markov_policies():
    """The max-over-policies candidate (``over="markov"``): equal to an enumeration of every
    deterministic Markov policy with `rl.planning.markov_moments` written apart (float64, TOL);
    0 on a deterministic LMDP; with M = 1 (π* is then Markov, a candidate of the max) at least
    the value at π*; on E3's interpolation (ε = 0.1) strictly above the at-π* value (the review's
    instance: ×4.3), so the two forms differ; too many policies: one ConfigError line."""
    import itertools

    for eps, seed in ((0.3, 1), (0.1, 0)):
        model = instances.interpolation(
            num_contexts=2, num_states=3, num_actions=2, horizon=3, epsilon=eps, seed=seed
        )
        w = model.weights
        best_c = best_t = 0.0
        for acts in itertools.product(range(2), repeat=9):
            e1, e2 = pl.markov_moments(model, np.asarray(acts).reshape(3, 3))
            best_c = max(best_c, float(w @ (e2 - e1**2)))
            best_t = max(best_t, float(w @ e2 - (w @ e1) ** 2))
        assert instances.var_star(model, over="markov") == pytest.approx(best_c, abs=TOL)
        assert instances.var_star(model, "total", over="markov") == pytest.approx(best_t, abs=TOL)
    det = instances.interpolation(num_states=3, horizon=3, epsilon=0.0, seed=4)
    assert instances.var_star(det, over="markov") < TOL
    one = instances.garnet(num_contexts=1, num_states=3, num_actions=2, horizon=3, seed=2)
    assert instances.var_star(one, over="markov") >= instances.var_star(one) - TOL
    e3 = instances.interpolation(
        num_contexts=2, num_states=3, num_actions=2, horizon=4, epsilon=0.1, seed=0
    )
    assert instances.var_star(e3, over="markov") > 2 * instances.var_star(e3)
    with pytest.raises(ConfigError, match=r"^over: markov enumerates") as e:
        instances.var_star(instances.garnet(num_states=5, horizon=5), over="markov")
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------- bad input
def _good():
    return guess_model(0.5, H=2)


@pytest.mark.parametrize(
    "change,field",
    [
        (lambda m: m._replace(weights=np.array([0.0, 1.0])), "weights"),
        (lambda m: m._replace(weights=np.array([0.5, 0.6])), "weights"),
        (lambda m: m._replace(init=np.array([[0.5], [1.0]])), "init"),
        (lambda m: m._replace(transitions=m.transitions * 0.9), "transitions"),
        (lambda m: m._replace(rewards=m.rewards * -1), "rewards"),
        (lambda m: m._replace(rewards=m.rewards * 3), "rewards"),  # totals 1.5 > 1, each <= 1
        (lambda m: m._replace(horizon=0), "horizon"),
    ],
)
def test_bad_input_is_one_line_naming_the_field(change, field):
    with pytest.raises(ConfigError) as e:
        pl.optimal_value(*change(_good()))
    msg = str(e.value)
    assert msg.startswith(f"{field}:") and "\n" not in msg


def test_too_large_for_exact_planning():
    model = instances.garnet(horizon=30)
    with pytest.raises(ConfigError) as e:
        pl.optimal_value(*model)
    msg = str(e.value)
    assert msg.startswith("horizon:") and "\n" not in msg
    assert "history-tree nodes" in msg and "belief-merged" in msg and "lattice" in msg
    for planner in ("history", "belief", "alpha"):
        with pytest.raises(ConfigError, match=r"^horizon: H = 30 is too large"):
            pl.optimal_value(*model, planner=planner)
    with pytest.raises(ConfigError, match=r"^planner:"):
        pl.optimal_value(*_good(), planner="nope")


@pytest.mark.slow
def test_lattice_large_horizon_is_polynomial():
    """H = 64 on the lattice: the merged graph has at most S (2h - 1) nodes at step h, and V*
    grows with H towards the per-step optimum (a sanity bound: V* <= oracle)."""
    model = instances.lattice(horizon=64)
    graph = pl.belief_graph(model)
    assert all(len(lv.states) <= 4 * (2 * h - 1) for h, lv in enumerate(graph.levels, 1))
    v = pl.graph_policy(model, graph)[2]
    assert v <= model.weights @ pl.context_values(model)[0] + TOL
    assert pl.optimal_value(*model) == pytest.approx(v, abs=TOL)


@pytest.mark.slow
def test_brute_force_three_contexts():
    model = random_model(3, 2, 2, 2, 3, context_rewards=True)
    brute = pl.brute_force_value(model)
    for v in all_planners(model):
        assert v == pytest.approx(brute, abs=TOL)
