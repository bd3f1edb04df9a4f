"""The fixed-budget agents take the horizon T as an input of the engine's programs
(`experiments.simulate`, "Horizon as an input"): runs that differ only in T share one compiled
program, with results equal bit for bit to the program compiled with T a constant (the path
every other agent takes), and a T too small for the first phase is still refused in one line
before anything is compiled."""

import importlib

import numpy as np
import pytest

from bandits.linear_bai import linear_bai
from experiments.config import ConfigError
from privacy.dpbai import DPBAI
from privacy.halving import DPSequentialHalving, SequentialHalving
from privacy.od_linbai import ODLinBAI

sim = importlib.import_module("experiments.simulate")  # the module (the package exports a function)
ENV = linear_bai(instance="soare", omega=0.3)  # K = 5, d = 4: small programs
SEEDS = 16


def _sweep(agents, horizon: int):
    variants = {"a": [(ENV, ENV.default_params(), a) for a in agents]}
    return sim.simulate_sweep(variants, horizon, SEEDS, seed=7)["a"]


def _assert_same(r, s):
    assert r.steps == s.steps and r.rounds.tolist() == s.rounds.tolist()
    for name in r.final:
        np.testing.assert_array_equal(r.final[name], s.final[name])  # bit for bit
    for name in r.curves:
        np.testing.assert_array_equal(r.curves[name], s.curves[name])


@pytest.mark.parametrize(
    "agents",
    [
        # two configs: the horizon inputs (OD-LinBAI's host m and ⌈π_i m⌉) on a config axis
        pytest.param([ODLinBAI(epsilon=1.0), ODLinBAI()], id="dp_od_linbai"),
        pytest.param([DPSequentialHalving(epsilon=0.5)], id="dp_sh", marks=pytest.mark.slow),
        pytest.param([DPBAI(epsilon=0.3)], id="dp_bai", marks=pytest.mark.slow),
    ],
)
def test_runs_differing_only_in_T_share_one_program(agents, monkeypatch):
    """T = 200 compiles; T = 317 (other phase budgets, another rest for `spend_rest`) is a hit
    of the same program (no compile, one program more in the cache in all). Its results equal
    those of the program compiled with T = 317 a constant (the engine's path for agents without
    ``horizon_inputs``, as before the horizon became an input): same seeds, same draws, integer
    schedules, so equal bit for bit."""
    sim._PROGRAMS.clear()
    first = _sweep(agents, 200)
    assert first[0].info["program_cache"] == "compiled"
    second = _sweep(agents, 317)
    assert second[0].info["program_cache"] == "hit"  # found in the cache: nothing compiled
    assert len(sim._PROGRAMS) == 1
    assert all(r.horizon == 317 for r in second)

    monkeypatch.setattr(sim, "_takes_horizon", lambda agent: False)  # T a constant
    alone = _sweep(agents, 317)
    assert alone[0].info["program_cache"] == "compiled" and len(sim._PROGRAMS) == 2
    for r, s in zip(second, alone, strict=True):
        _assert_same(r, s)


@pytest.mark.parametrize(
    "agent, T, message",
    [
        (DPBAI(), 7, r"^horizon T = 7 is smaller than the 8 rounds DP-BAI needs"),
        (SequentialHalving(), 14, r"^horizon T = 14 is smaller than the 15 rounds Sequential"),
        (ODLinBAI(), 8, r"^horizon T = 8 is smaller than the 9 rounds OD-LinBAI needs"),
    ],
)
def test_a_horizon_too_small_is_refused_in_one_line(agent, T, message):
    """The check runs on the host from the concrete T (`horizon_inputs`), also when the agent's
    probe was cached at a valid T (probes are shared across T), before anything compiles."""
    params = ENV.default_params()
    sim.cached_probe(ENV, params, agent, 1000)
    with pytest.raises(ConfigError, match=message) as err:
        sim.compile_simulation(ENV, params, agent, T, 4)
    assert "\n" not in str(err.value)
