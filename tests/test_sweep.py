"""Sweeps inside one program (`experiments.simulate.simulate_sweep`, issue 9 part 2).

The reference for every sweep is the same configs run one by one with `simulate`: results must
be bit-identical (same draws per seed, the same arithmetic vectorised over a config axis), and
configs that differ in something static must still come out right, in programs of their own.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_engine import FixedPull

from bandits.agents import UCB1, EpsilonGreedy
from bandits.envs import BernoulliBandit, GaussianBandit
from experiments.protocol import IllegalActionError
from experiments.simulate import compile_sweep, make_grid, simulate, simulate_sweep

T, N = 300, 5
GRID = make_grid(T, "linear", 7)


def _same(a, b) -> None:
    """Bit-identical curves and finals (NaN-free: every grid point is recorded)."""
    assert a.curves.keys() == b.curves.keys() and a.final.keys() == b.final.keys()
    for k in a.curves:
        np.testing.assert_array_equal(a.curves[k], b.curves[k], err_msg=k)
    for k in a.final:
        np.testing.assert_array_equal(a.final[k], b.final[k], err_msg=k)


def _alone(variants, horizon=T, **kw):
    return [
        simulate(e, p, a, horizon, N, 3, grid=GRID, chunk_size=100, **kw) for e, p, a in variants
    ]


def test_agent_hyperparameter_sweep_is_one_program_and_matches_separate_runs():
    env = BernoulliBandit((0.2, 0.5, 0.6))
    variants = [(env, env.default_params(), UCB1(c=c)) for c in (0.5, 1.0, 2.0)]
    groups = compile_sweep(variants, T, N, GRID, 100)
    assert [g[0] for g in groups] == [[0, 1, 2]]  # one program for the three values of c
    swept = simulate_sweep({"ucb1": variants}, T, N, 3, GRID, 100)["ucb1"]
    for s, a in zip(swept, _alone(variants), strict=True):
        _same(s, a)
    assert swept[0].info["sweep"]["configs_in_program"] == 3
    assert [s.info["sweep"]["index_in_program"] for s in swept] == [0, 1, 2]
    # compiled once, by compile_sweep above: the run found it in the program cache
    assert [s.info["program_cache"] for s in swept] == ["hit", "shared in sweep", "shared in sweep"]
    # bookkeeping, not timing: only the first config of a program carries its compile time
    carried = [s.compile_seconds for s in swept[1:]]
    assert carried == [0.0, 0.0]
    # c really changes the run (the sweep is not three copies of one config)
    assert not np.array_equal(swept[0].final["regret"], swept[2].final["regret"])


def test_env_params_sweep_matches_separate_runs():
    """Means are values of the env's params pytree (and floats of the env): one program."""
    envs = [GaussianBandit((0.1, m, 0.5), sigma=s) for m, s in ((0.2, 1.0), (0.4, 0.5))]
    variants = [(e, e.default_params(), EpsilonGreedy()) for e in envs]
    assert [g[0] for g in compile_sweep(variants, T, N, GRID, 100)] == [[0, 1]]
    swept = simulate_sweep({"eg": variants}, T, N, 3, GRID, 100)["eg"]
    for s, a in zip(swept, _alone(variants), strict=True):
        _same(s, a)


def test_configs_that_change_shapes_get_programs_of_their_own():
    """K = 2 and K = 3 cannot share shapes; the two K = 3 configs still share one program."""
    envs = [
        BernoulliBandit((0.3, 0.6)),
        BernoulliBandit((0.3, 0.5, 0.6)),
        BernoulliBandit((0.1, 0.5, 0.6)),
    ]
    variants = [(e, e.default_params(), UCB1()) for e in envs]
    assert [g[0] for g in compile_sweep(variants, T, N, GRID, 100)] == [[0], [1, 2]]
    swept = simulate_sweep({"ucb1": variants}, T, N, 3, GRID, 100)["ucb1"]
    for s, a in zip(swept, _alone(variants), strict=True):
        _same(s, a)
    assert "sweep" not in swept[0].info


def test_sweep_with_a_shorter_last_chunk_and_multi_round_steps():
    """T = 250 in chunks of 100 (a masked last chunk); pulls of 7 rounds (interpolated grid)."""
    env = BernoulliBandit((0.4, 0.5))
    one_round = [(env, env.default_params(), UCB1(c=c)) for c in (1.0, 3.0)]
    grid = make_grid(250, "every")
    swept = simulate_sweep({"u": one_round}, 250, N, 3, grid, 100)["u"]
    alone = [simulate(e, p, a, 250, N, 3, grid=grid, chunk_size=100) for e, p, a in one_round]
    for s, a in zip(swept, alone, strict=True):
        _same(s, a)
    envs = [BernoulliBandit((0.4, m)) for m in (0.5, 0.7)]
    multi = [(e, e.default_params(), FixedPull(0, 7)) for e in envs]
    swept = simulate_sweep({"p": multi}, 98, N, 3, make_grid(98, "every"), 100)["p"]
    assert swept[0].info["multi_round"] and swept[0].info["sweep"]["configs_in_program"] == 2
    for s, e in zip(swept, envs, strict=True):
        gap = np.float32(e.means[1]) - np.float32(e.means[0])
        np.testing.assert_allclose(s.final["regret"], gap * 98.0, rtol=1e-6)
    alone = [
        simulate(e, p, a, 98, N, 3, grid=make_grid(98, "every"), chunk_size=100)
        for e, p, a in multi
    ]
    for s, a in zip(swept, alone, strict=True):
        _same(s, a)


def test_illegal_action_names_the_config():
    envs = [BernoulliBandit((0.4, 0.5)), BernoulliBandit((0.3, 0.5))]
    variants = [(e, e.default_params(), FixedPull(0, 7)) for e in envs]
    with pytest.raises(IllegalActionError, match="config 0 of the sweep, seed 0"):
        simulate_sweep({"p": variants}, 100, 2, 0, make_grid(100, "every"), 100)
