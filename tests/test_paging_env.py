"""The paging environment (paging/env.py): the cache rules, OPT, predictions and bad input.

References are independent: plain-Python simulators, an exhaustive search over eviction choices
(`paging.opt.opt_brute_force`) and phase bits from their definition, on small fixed traces; the
comparisons are exact (integer counts).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.config import ConfigError
from experiments.protocol import IllegalActionError
from experiments.rollout import rollout
from experiments.simulate import host_inputs, simulate
from paging.classic import LRU, Belady
from paging.env import Paging, PagingObs
from paging.opt import opt_brute_force
from paging.predictions import discard_bits_reference, phase_bits_reference
from paging.traces import write_text

TRACE = [5, 1, 5, 2, 9, 1, 2, 5, 7, 1, 9, 9, 2, 7, 5, 1, 2, 3, 1, 5]  # 6 distinct ids


def run(env: Paging, agent, steps: int | None = None, emit=None):
    """One seed through the engine's rollout with the env's host inputs."""
    steps = steps or env.length or len(TRACE)
    inputs = host_inputs(env, env.default_params(), steps, 1)
    xs = {k: jnp.asarray(np.asarray(v.data[:steps])) for k, v in inputs.items()}
    return rollout(env, env.default_params(), agent, jax.random.key(0), steps, inputs=xs, emit=emit)


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("paging") / "trace.txt"
    write_text(path, np.asarray(TRACE))
    return str(path)


def lru_reference(trace, k):
    cache, faults = [], 0
    for p in trace:
        if p in cache:
            cache.remove(p)
        else:
            faults += 1
            if len(cache) == k:
                cache.pop(0)
        cache.append(p)
    return faults


def test_lru_and_belady_on_a_text_trace_match_references_and_brute_force(trace_file):
    env = Paging(trace=trace_file, cache_size=3, predictions="discard")
    lru = run(env, LRU())
    opt = opt_brute_force(TRACE, 3)  # exhaustive search over eviction choices
    assert int(lru.totals["faults"]) == lru_reference(TRACE, 3)
    assert int(lru.totals["opt_faults"]) == opt
    bel = run(env, Belady())
    assert int(bel.totals["faults"]) == opt
    assert int(bel.illegal) == 0


def test_exact_bits_reach_the_agent(trace_file):
    for kind, ref in (("discard", discard_bits_reference), ("phase", phase_bits_reference)):
        env = Paging(trace=trace_file, cache_size=3, predictions=kind)
        r = run(env, LRU(), emit=lambda tr: (tr.obs.bit, tr.obs.page, tr.obs.predicted_next))
        bits, pages, pn = (np.asarray(x) for x in r.emitted)
        np.testing.assert_array_equal(bits, ref(TRACE, 3))
        assert pages.max() == 5  # dense ids 0..n-1
        assert np.all(pn == len(TRACE))  # no next-arrival predictions: the trace's length
        assert int(r.totals["eta0"]) == 0 and int(r.totals["eta1"]) == 0


class EvictOutOfRange:
    """An agent that names slot k on a fault: illegal."""

    def randomness(self, spec):
        return {}

    def init(self, key, spec):
        return ()

    def act(self, rng, state, obs: PagingObs):
        return jnp.asarray(obs.slot_page.shape[0], jnp.int32)

    def update(self, state, obs, action, feedback):
        return state

    def output(self, state):
        return ()


def test_an_eviction_outside_the_cache_is_illegal():
    env = Paging(trace="cyclic", length=200, cache_size=2)
    with pytest.raises(IllegalActionError):
        simulate(env, (), EvictOutOfRange(), 200, 1)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"cache_size": 0}, "env.cache_size"),
        ({"flip_p": 1.5}, "env.flip_p"),
        ({"flip_p": -0.1}, "env.flip_p"),
        ({"predictions": "oracle"}, "env.predictions"),
        ({"flip": "sideways"}, "env.flip"),
        ({"trace": "no/such/file.txt"}, "env.trace"),
        ({"predictions": "discard", "error_budget": 5, "flip_p": 0.1}, "env.error_budget"),
    ],
)
def test_bad_values_fail_in_one_line_naming_the_field(kwargs, field):
    with pytest.raises(ConfigError) as e:
        Paging(**{"trace": "zipf", "length": 100, **kwargs})
    msg = str(e.value)
    assert msg.startswith(field + ":") and "\n" not in msg, msg


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"predictions": "next_arrival", "flip_p": 0.2}, "env.flip_p"),
        ({"predictions": "none", "flip_p": 0.3}, "env.flip_p"),
        ({"predictions": "next_arrival", "flip": "one_to_zero"}, "env.flip"),
        ({"predictions": "none", "flip": "zero_to_one"}, "env.flip"),
        ({"predictions": "discard", "sigma": 5.0}, "env.sigma"),
        ({"predictions": "none", "sigma": 1.0}, "env.sigma"),
        ({"predictions": "none", "prediction_seed": 3}, "env.prediction_seed"),
    ],
)
def test_noise_settings_the_predictions_ignore_are_refused(kwargs, field):
    # each would silently do nothing: one line naming the field and when it applies
    with pytest.raises(ConfigError) as e:
        Paging(**{"trace": "zipf", "length": 100, **kwargs})
    msg = str(e.value)
    assert msg.startswith(field + ":") and "\n" not in msg, msg
    assert " only " in msg and "got " in msg, msg  # when it applies, and what was given


def test_noise_settings_where_they_apply_are_accepted():
    ok = [
        {"predictions": "discard", "flip_p": 0.2, "prediction_seed": 3},
        {"predictions": "phase", "flip_p": 0.1, "flip": "one_to_zero"},
        {"predictions": "discard", "flip_p": 0.0, "flip": "zero_to_one"},  # a sweep's p = 0
        {"predictions": "discard", "error_budget": 4, "flip": "one_to_zero"},
        {"predictions": "next_arrival", "sigma": 2.0, "prediction_seed": 0},
        {"predictions": "next_arrival", "sigma": 0.0},
        {"predictions": "none"},
        {"predictions": "discard", "prediction_seed": 3},  # a sweep over flip_p may include 0
        {"predictions": "next_arrival", "sigma": 0.0, "prediction_seed": 3},
    ]
    for kwargs in ok:
        Paging(**{"trace": "zipf", "length": 100, **kwargs})


def test_next_arrival_beyond_float32_integers_needs_x64(monkeypatch):
    # float32 holds every integer only up to 2^24: predicted next-arrival times of a longer trace
    # collide (2^24 + 1 reads as 2^24), and follow-the-predictions then ties where the exact
    # times differ. Such a trace is refused with next_arrival predictions unless x64 is on, where
    # the times are float64. The limit is patched down to keep the trace small.
    import paging.env as E
    from paging.reoccurrence import BlindOracle

    assert E.EXACT_TIMES == 2**24
    assert np.float32(2**24 + 1) == np.float32(2**24) != np.float32(2**24 - 1)
    monkeypatch.setattr(E, "EXACT_TIMES", 100)
    kw = {"trace": "zipf", "length": 101, "pages": 20, "cache_size": 4}
    with jax.enable_x64(False), pytest.raises(ConfigError) as e:
        Paging(**kw, predictions="next_arrival")
    msg = str(e.value)
    assert msg.startswith("env.predictions:") and "\n" not in msg, msg
    assert "101 requests" in msg and "JAX_ENABLE_X64" in msg and "x64=true" in msg, msg
    Paging(**kw, predictions="discard")  # bits: no times
    Paging(**{**kw, "length": 100}, predictions="next_arrival")  # at the limit: exact
    with jax.enable_x64(True):
        env = Paging(**kw, predictions="next_arrival")
        spec = env.spec((), 101)
        assert env.init(jax.random.key(0), ()).predicted_next.dtype == jnp.float64
        agent = BlindOracle()
        state = agent.init(jax.random.key(0), spec)
        state = state._replace(pred=jnp.asarray([2.0**24, 2.0**24 + 1], E.time_dtype()))
        assert int(agent.act({}, state, None)) == 1  # the later one, exactly
    state = state._replace(pred=jnp.asarray([2.0**24, 2.0**24 + 1], E.time_dtype()))
    assert E.time_dtype() == jnp.float32 and int(agent.act({}, state, None)) == 0  # a tie


def test_a_cache_as_large_as_the_pages_warns_and_a_short_prediction_file_fails(tmp_path):
    with pytest.warns(UserWarning, match="every algorithm is optimal"):
        Paging(trace="cyclic", length=50, cache_size=4, pages=5)  # k + 1 = 5 pages, k = 4: fine
        Paging(trace="uniform", length=50, pages=3, cache_size=3)
    short = tmp_path / "bits.npy"
    np.save(short, np.zeros(len(TRACE) - 1, np.int8))
    path = tmp_path / "t.txt"
    write_text(path, np.asarray(TRACE))
    with pytest.raises(ConfigError) as e:
        Paging(trace=str(path), cache_size=2, predictions="discard", prediction_file=str(short))
    assert str(e.value).startswith("env.prediction_file:") and "lengths must be equal" in str(
        e.value
    )
