"""`experiments.batched_cond.cond_any`: equals the plain select of both branches (under jit,
vmap and nested vmap) and runs the expensive branch only in steps where some lane needs it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.batched_cond import cond_any, cond_lanes

CALLS: list[int] = []  # host-side record of the expensive branch's runs


def _count(x):
    CALLS.append(int(np.size(x)))


def expensive(inputs, power):
    """A stand-in for a phase end: a pytree in, a pytree of the same structure out."""
    x, scale = inputs
    jax.debug.callback(_count, x)
    return {"v": jnp.sin(x) ** power * scale, "n": jnp.sum(x > 0).astype(jnp.int32)}


def reference(pred, inputs, old):
    """The plain select of both branches (what a vmapped lax.cond computes)."""
    new = expensive(inputs, 3)
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), new, old)


def _data(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(*shape, 5)), jnp.float32)
    pred = jnp.asarray(rng.random(shape) < 0.3)
    scale = jnp.asarray(rng.random(shape) + 0.5, jnp.float32)  # a traced "hyperparameter"
    old = {"v": jnp.zeros((*shape, 5), jnp.float32), "n": jnp.full(shape, -1, jnp.int32)}
    return pred, (x, scale), old


def _assert_same(a, b):
    # the same float32 operations on the same lanes: bit-identical, no tolerance needed
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_equals_select_unbatched_and_jit():
    apply = cond_any(expensive, 3)
    _, inputs, old = _data(())
    for p in (jnp.asarray(True), jnp.asarray(False)):
        _assert_same(apply(p, inputs, old), reference(p, inputs, old))
        _assert_same(jax.jit(apply)(p, inputs, old), reference(p, inputs, old))


@pytest.mark.parametrize("jit", [False, True])
def test_equals_select_under_vmap_and_nested_vmap(jit):
    apply = cond_any(expensive, 3)
    pred, inputs, old = _data((7,))
    f = jax.jit(jax.vmap(apply)) if jit else jax.vmap(apply)
    _assert_same(f(pred, inputs, old), jax.vmap(reference)(pred, inputs, old))
    # configs x seeds, as the engine nests them; the config's scale is shared by its seeds
    pred, (x, scale), old = _data((3, 4), seed=1)
    scale = scale[:, 0]
    nested = jax.vmap(jax.vmap(apply, in_axes=(0, (0, None), 0)), in_axes=(0, (0, 0), 0))
    ref = jax.vmap(jax.vmap(reference, in_axes=(0, (0, None), 0)), in_axes=(0, (0, 0), 0))
    g = jax.jit(nested) if jit else nested
    _assert_same(g(pred, (x, scale), old), ref(pred, (x, scale), old))


def test_unbatched_old_and_pred_broadcast():
    # only the inputs batched: pred and old are shared by the lanes
    apply = cond_any(expensive, 3)
    _, inputs, old = _data((6,))
    one = jax.tree.map(lambda a: a[0], old)
    got = jax.vmap(apply, in_axes=(None, 0, None))(jnp.asarray(True), inputs, one)
    _assert_same(got, jax.vmap(reference, in_axes=(None, 0, None))(True, inputs, one))


def test_expensive_branch_runs_only_when_some_lane_needs_it():
    apply = jax.jit(jax.vmap(jax.vmap(cond_any(expensive, 3))))
    pred, inputs, old = _data((3, 4), seed=2)
    CALLS.clear()
    out = apply(jnp.zeros_like(pred), inputs, old)
    jax.block_until_ready(out)
    assert CALLS == []  # no lane needs it: not run at all
    _assert_same(out, old)
    one = jnp.zeros_like(pred).at[2, 1].set(True)
    out = apply(one, inputs, old)
    jax.block_until_ready(out)
    assert sum(CALLS) == 3 * 4 * 5  # one lane needs it: run once, for the whole batch
    np.testing.assert_array_equal(np.asarray(out["n"]) >= 0, np.asarray(one))
    # the control: a plain lax.cond under vmap is a select and runs the branch regardless
    plain = jax.jit(jax.vmap(lambda p, i, o: jax.lax.cond(p, lambda: expensive(i, 3), lambda: o)))
    pred, inputs, old = _data((4,), seed=3)
    CALLS.clear()
    jax.block_until_ready(plain(jnp.zeros_like(pred), inputs, old))
    assert CALLS != []


def test_the_program_branches():
    # the compiled step holds one cond on an unbatched predicate, not a select of both sides
    apply = jax.vmap(jax.vmap(cond_any(expensive, 3)))
    pred, inputs, old = _data((2, 3))
    text = str(jax.make_jaxpr(apply)(pred, inputs, old))
    assert "cond[" in text


def shared_step(inputs, power):
    """A phase end reading the state it updates (`privacy.fixed_budget.where_some`'s shape)."""
    state, scale = inputs
    return {"v": jnp.sin(state["v"] + 1.0) ** power * scale, "n": state["n"] + 1}


@pytest.mark.parametrize("cond", [cond_any, cond_lanes])
def test_inputs_that_share_arrays_with_old(cond):
    # `inputs` holding the very arrays of `old` (where_some passes an agent's state both ways):
    # the results equal the plain select, with and without the sharing (a copy breaks it)
    pred, (x, scale), _ = _data((3, 4), seed=2)
    old = {"v": x, "n": jnp.arange(12, dtype=jnp.int32).reshape(3, 4)}

    def shared(p, s, o):
        return cond(shared_step, 3)(p, (o, s), o)

    def unshared(p, s, o):
        return cond(shared_step, 3)(p, (jax.tree.map(jnp.copy, o), s), o)

    def ref(p, s, o):
        new = shared_step((o, s), 3)
        return jax.tree.map(lambda a, b: jnp.where(p, a, b), new, o)

    want = jax.vmap(jax.vmap(ref))(pred, scale, old)
    for f in (shared, unshared):
        _assert_same(jax.jit(jax.vmap(jax.vmap(f)))(pred, scale, old), want)


@pytest.mark.parametrize("block", ["1", "3", "5", "256"])
def test_cond_lanes_in_blocks_equals_the_select(monkeypatch, block):
    """`cond_lanes` a block of lanes at a time (`lane_block`: 1 on the CPU, 256 on an
    accelerator; forced here through ``REGRETLAB_LANE_BLOCK``, read at trace time): the plain
    select, bit for bit, whether the needing lanes fill whole blocks or not (the last block is
    shifted back and recomputes lanes of the one before) and with a block wider than the batch.
    12 lanes (configs x seeds), 0, 1, 4 and 7 of them needing it."""
    monkeypatch.setenv("REGRETLAB_LANE_BLOCK", block)
    _, (x, scale), old = _data((3, 4), seed=5)
    apply = jax.jit(jax.vmap(jax.vmap(cond_lanes(expensive, 3))))
    rng = np.random.default_rng(6)
    for needing in (0, 1, 4, 7):
        pred = np.zeros(12, bool)
        pred[rng.choice(12, needing, replace=False)] = True
        pred = jnp.asarray(pred.reshape(3, 4))
        want = jax.vmap(jax.vmap(reference))(pred, (x, scale), old)
        _assert_same(apply(pred, (x, scale), old), want)


@pytest.mark.parametrize("lanes", [1, 2, 7, 1000])
def test_needing_lanes_first_is_the_stable_argsort(lanes):
    """`cond_lanes` orders the lanes by two running counts and a scatter instead of a sort: the
    permutation ``np.argsort(~pred, kind="stable")`` exactly, for none, some and all lanes."""
    from experiments.batched_cond import _needing_first

    rng = np.random.default_rng(lanes)
    for share in (0.0, 0.01, 0.5, 1.0):
        pred = rng.random(lanes) < share
        order, count = jax.jit(_needing_first)(jnp.asarray(pred))
        np.testing.assert_array_equal(np.asarray(order), np.argsort(~pred, kind="stable"))
        assert int(count) == pred.sum()


def test_lane_block_is_validated(monkeypatch):
    from experiments.batched_cond import lane_block

    monkeypatch.setenv("REGRETLAB_LANE_BLOCK", "0")
    with pytest.raises(ValueError, match=r"^REGRETLAB_LANE_BLOCK: must be a positive integer"):
        lane_block()
    monkeypatch.delenv("REGRETLAB_LANE_BLOCK")
    assert lane_block() == (1 if jax.default_backend() == "cpu" else 256)


def test_pred_must_be_scalar():
    apply = cond_any(expensive, 3)
    _, inputs, old = _data(())
    with pytest.raises(ValueError, match="pred must be one bool"):
        apply(jnp.ones(2, bool), inputs, old)


def test_masked_max_det_fast_path_equals_the_enumeration_under_vmap():
    """`privacy.dpbai.masked_max_det` skips its 2^s enumeration unless some lane's active arms
    are dependent: the masks equal the enumeration's (`_enumerated_max_det`, run in every lane)
    for a batch of independent lanes and for one mixing dependent and independent lanes."""
    from privacy import dpbai

    rng = np.random.default_rng(4)
    a = rng.normal(size=(9, 4))
    a[7] = 0.5 * a[1]  # parallel to arm 1
    a[8] = a[2] - a[3]  # in span(a_2, a_3)
    feats = jnp.asarray(a, jnp.float32)

    def enumerated(mask):
        idx = jnp.nonzero(mask, size=5, fill_value=0)[0]
        valid = jnp.arange(5) < jnp.sum(mask)
        x = feats[idx]
        return dpbai._enumerated_max_det((x @ x.T, idx, valid, mask), 5)

    fast = jax.jit(jax.vmap(lambda m: dpbai.masked_max_det(feats, m, 5)))
    slow = jax.jit(jax.vmap(enumerated))
    independent = [(0, 4, 5, 6), (1, 2, 3), (0,), (4, 6)]
    dependent = [(1, 7), (2, 3, 8), (1, 2, 3, 7, 8), (0, 1, 7, 2)]
    for sets in (independent, independent + dependent):
        masks = np.zeros((len(sets), 9), bool)
        for i, s in enumerate(sets):
            masks[i, list(s)] = True
        np.testing.assert_array_equal(fast(jnp.asarray(masks)), slow(jnp.asarray(masks)))


def test_where_some_with_lifted_epsilon_equals_the_select_of_both_sides():
    """`privacy.fixed_budget.where_some` as `PhasedAgent.update` uses it, for DP-SH with ε
    lifted into the program (a tracer per config, `experiments.lift`) under configs x seeds:
    the state equals ``select(done, end_phase(state), state)`` (the code it replaced)."""
    from experiments.lift import lift
    from privacy import fixed_budget as fb
    from privacy.halving import DPSequentialHalving

    class Spec:
        num_arms, horizon = 5, 60

    lifted = lift(DPSequentialHalving(epsilon=1.0))
    rng = np.random.default_rng(5)

    def one(eps, key, sums, done):
        agent = lifted.rebuild((eps,))
        state = agent.init(key, Spec())
        state = state._replace(stats=fb.PhaseStats(state.alloc, sums))
        got = fb.where_some(agent, "end_phase", done, state, fields=fb.PHASE_FIELDS)
        want = fb.select(done, agent.end_phase(state), state, fb.PHASE_FIELDS)
        return got, want

    eps = jnp.asarray([0.5, 2.0])
    keys = jax.random.split(jax.random.key(0), 6).reshape(2, 3)
    sums = jnp.asarray(rng.integers(0, 4, size=(2, 3, 5)), jnp.float32)
    done = jnp.asarray([[True, False, True], [False, False, False]])
    run = jax.jit(jax.vmap(jax.vmap(one, in_axes=(None, 0, 0, 0))))
    got, want = run(eps, keys, sums, done)
    _assert_same(jax.tree.map(_data_of, got), jax.tree.map(_data_of, want))
    assert np.asarray(got.phase).tolist() == [[1, 0, 1], [0, 0, 0]]


def _data_of(x):
    return jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x


@pytest.mark.parametrize("jit", [False, True])
def test_cond_lanes_equals_select_and_runs_only_the_lanes_that_need_it(jit):
    """`cond_lanes`: the same results as the select of both branches (elementwise float32 ops,
    the same on one lane as on a batch: bit-identical), with the branch run once per lane that
    needs it (3 x 4 configs x seeds, nested as in the engine) and not at all when none does."""
    apply = jax.vmap(jax.vmap(cond_lanes(expensive, 3)))
    apply = jax.jit(apply) if jit else apply
    pred, inputs, old = _data((3, 4), seed=4)
    CALLS.clear()
    out = apply(pred, inputs, old)
    jax.block_until_ready(out)
    needing = int(np.sum(np.asarray(pred)))
    assert len(CALLS) == needing and set(CALLS) <= {5}  # one unbatched call per needing lane
    _assert_same(out, jax.vmap(jax.vmap(reference))(pred, inputs, old))
    CALLS.clear()
    jax.block_until_ready(apply(jnp.zeros_like(pred), inputs, old))
    assert CALLS == []
