"""The auditor (privacy/audit.py) on the project's own binary-tree counter (privacy/counters),
run through the engine's rollout: a positive control (the real `BinaryTreeCounter`, Laplace,
T = 8, ε = 1, research and secure noise) and a broken control (the same counter with its
sensitivity mis-set, sens1 = 1 instead of L = ⌊log2 8⌋ + 1 = 4, so the node noise is calibrated
for one node and a flipped entry, which lies in 4 nodes, makes the releases 4ε-DP).

tests/test_privacy_audit_controls.py has the same controls as stand-alone NumPy mechanisms; here
the mechanism is the project's code path itself (`Counter.node_scale` in research mode,
`Counter._calibrate` in secure mode, both reading `BinaryTree.sens1`), so a calibration bug in the
real counter is what the broken control stands for. Each single release of the broken counter is
still at most ε-DP (it reads each node once), so only the default vector events (differences,
block sums, the learned direction) can flag it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_privacy_audit_controls import PAIRS

from experiments.rollout import rollout
from privacy.audit import audit
from privacy.continual import ContinualSpec, continual_fixed
from privacy.counters import BinaryTreeCounter
from privacy.counters import agent as counter_agent
from privacy.counters.tree import BinaryTree

T, EPS = 8, 1.0
LEVELS = 4  # ⌊log2 T⌋ + 1: the nodes containing one entry (sens1 of the binary tree)
# event-level neighbours of the controls' stream: entry 0 (in the 4 nodes [0,1), [0,2), [0,4),
# [0,8)), entry 5 and entry 6 (the same pairs as the NumPy re-implementations there)
SPEC = ContinualSpec(T, 1, 1.0)

# Sample sizes and seed. A correct ε-DP mechanism is flagged with probability <= α = 0.05 by
# `audit` (its docstring), whatever the seed; the seed is fixed so the test is deterministic.
# n = 1000 outputs per input and phase (3 pairs: 12 000 rollouts per audit, ~1-2 s each) flags
# the sens1 = 1 counter with a clear margin over the claim ε = 1, measured at seed 0:
#   research: correct ε_lb 0.19, broken 1.42;  secure: correct 0.14, broken 1.83
# (seeds 0-9: the broken counter flagged in every one, the correct one in none; the test's
# docstring).
N = 1000
SEED = 0


def counter_mechanism(counter):
    """The auditor's M(stream, n, rng): n independent rollouts of `counter` on the fixed
    stream, the output its T releases. A new jitted program per call, so the calibration in
    force when the audit first calls it (the broken control's patch) is what gets traced."""
    env = continual_fixed(np.zeros((T, 1)), bound=1.0)

    @jax.jit
    def run(x, keys):
        def one(k):
            return rollout(env, x, counter, k, T, emit=lambda tr: tr.action).emitted[:, 0]

        return jax.vmap(one)(keys)

    def m(x, n, rng):
        keys = jax.random.split(jax.random.key(int(rng.integers(2**31))), n)
        xs = jnp.asarray(np.asarray(x, float).reshape(T, 1), jnp.float32)
        return np.asarray(run(xs, keys), np.float64)

    return m


def make_counter(mode: str):
    kw = dict(distribution="laplace", epsilon=EPS, rho=None, noise=mode)
    if mode == "secure":
        kw["source"] = "key"  # reproducible bits from the rollout's keys (the fixed seed)
    return BinaryTreeCounter(**kw)


def node_noise(counter) -> float:
    """The node noise scale the backend runs (research b, secure b in grid units, grid_k = 0)."""
    if counter.noise == "research":
        return counter.node_scale(SPEC)
    return float(counter.secure_noise(SPEC).param)


@pytest.mark.parametrize("mode", ["research", "secure"])
def test_audit_real_binary_tree_counter_and_sensitivity_mis_set(monkeypatch, mode):
    """Correct counter (node b = L/ε = 4): not flagged. sens1 mis-set to 1 on the real
    `BinaryTree` (node b = 1/ε, claim still ε = 1): flagged. Measured at seed 0 (n = 1000):
    research ε_lb 0.19 (correct) / 1.42 (broken), secure 0.14 / 1.83. Over seeds 0-9: the
    broken counter flagged in 10 of 10 (ε_lb >= 1.42 research, >= 1.49 secure), the correct
    one in none (ε_lb <= 0.31 research, <= 0.20 secure). The values are not pinned (float
    noise may round differently on another backend); the margins are what the test relies on."""
    good = make_counter(mode)
    assert node_noise(good) == LEVELS / EPS
    ok = audit(counter_mechanism(good), PAIRS, EPS, N, N, seed=SEED)
    assert not ok.flagged, ok

    # The secure plan is cached per (counter, spec) (`agent._plan`): the broken counter equals
    # the correct one field by field, so the cache is cleared on both sides of the patch (a
    # stale correct plan would hide the bug; a broken one must not leak into later tests).
    counter_agent._plan.cache_clear()
    try:
        with monkeypatch.context() as patch:
            patch.setattr(BinaryTree, "sens1", lambda self, T: 1.0)
            bad = make_counter(mode)
            assert node_noise(bad) == 1.0 / EPS  # the patch is what the backend calibrates with
            broken = audit(counter_mechanism(bad), PAIRS, EPS, N, N, seed=SEED)
    finally:
        counter_agent._plan.cache_clear()
    assert broken.flagged, broken
    assert node_noise(make_counter(mode)) == LEVELS / EPS  # the patch is gone
