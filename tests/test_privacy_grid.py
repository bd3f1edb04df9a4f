"""Issue 11, points 2 and 3: a secure counter never rounds a stream value silently, and a counter
run checks itself against the exact oracle.

* Input grid: a value that is not a multiple of 2^-grid_k is refused at load time with one line
  naming ``grid_k`` and the grid that holds the stream (random laws by their support, fixed
  sequences value by value), unless ``snap=true``, which rounds and counts.
* Summary figures: the per-step mean of ``sq_error`` and its maximum over t, each beside the
  exact oracle (d Var_t + bias², `privacy.continual.ContinualCounting.oracle`), printed by
  ``regretlab`` and ``regretlab-table`` and recorded in summary.json; here recomputed with NumPy
  from metrics.parquet and the oracle rebuilt from closed forms.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from test_cli import cli, files_under, parse_table

from experiments.config import ConfigError
from privacy.continual import ContinualSpec, continual_bernoulli, continual_fixed
from privacy.counters import COUNTERS, Secure
from privacy.streams import grid_exponent, snap_to_grid


# --------------------------------------------------------------------------- the grid itself
def test_grid_exponent_and_snap_agree_with_brute_force():
    """`grid_exponent` = the smallest k with v 2^k an integer (brute force: v 2^k is exact in
    float64 for these k), and `snap_to_grid` (the host-side copy used for checks and reports) is
    the secure backend's own `Secure.snap` in value units, bit for bit."""
    rng = np.random.default_rng(0)
    values = [0.0, 1.0, 0.5, 0.75, 0.3, 0.1, 2.0**-40, 3 * 2.0**-7, *rng.random(20)]
    for v in values:
        brute = next(k for k in range(1100) if float(Fraction(v) * 2**k).is_integer())
        assert grid_exponent(v) == brute
    assert grid_exponent(0.3) == 54  # 0.3 as a double is 5404319552844595 / 2^54
    x = np.concatenate([rng.random(200) * 1.3, [0.125, 0.375, 0.625, 1.0, 1.5]])
    for k, dg in ((0, 1), (1, 2), (3, 8), (3, 9)):
        got = snap_to_grid(x, k, dg)
        secure = np.asarray(Secure(grid_k=k, grid_bound=dg).snap(jnp.asarray(x, jnp.float32)))
        np.testing.assert_array_equal(got, secure * 2.0**-k)


# --------------------------------------------------------------------------- refusal, in process
def _spec(sequence, horizon=None):
    env = continual_fixed(sequence)
    return env.spec(env.default_params(), horizon or len(sequence))


# BLT with jax_privacy's golden 2-buffer parameters (as conf/agents/counter_blt.yaml's comment):
# given explicitly, so that no optimisation runs (it is tens of seconds of JIT compilation here)
EXPLICIT = {"blt": {"output_scale": (0.0122853238, 0.1878393665),
                    "buf_decay": (0.9999528892, 0.9857068667)}}  # fmt: skip


@pytest.mark.parametrize("name", ["binary", "smooth", "honaker", "sqrt", "blt"])
def test_every_secure_counter_refuses_values_off_its_grid(name):
    """0.5 at grid_k = 0 and 0.25 at grid_k = 1 are refused, naming grid_k = 2 (which holds
    every value); grid_k = 2 runs; research mode (no quantisation) and a Bernoulli stream (on
    every grid by construction) are never refused."""
    spec = _spec([0.5, 1, 0.25, 1])
    make = functools.partial(COUNTERS[name], **EXPLICIT.get(name, {}))
    with pytest.raises(ConfigError) as e:
        make(noise="secure", source="key")._check(spec)
    assert str(e.value) == (
        "grid_k: stream value 0.5 (step 1) is not a multiple of 2^-0 and would be rounded"
        " (2 of 4 values); grid_k=2 holds every value exactly; or set snap=true to round them"
        " (counted in the summary)"
    )
    with pytest.raises(ConfigError, match=r"^grid_k: stream value 0.25 \(step 3\) .* 2\^-1 "):
        make(noise="secure", source="key", grid_k=1)._check(spec)
    make(noise="secure", source="key", grid_k=2)._check(spec)
    make()._check(spec)
    bits = continual_bernoulli(0.5, d=2)
    for k in (0, 5):
        make(noise="secure", grid_k=k)._check(bits.spec(bits.default_params(), 64))


def test_refusal_names_what_would_hold_the_value():
    """0.3 is no dyadic fraction; its double is 5404319552844595 2^-54: grid_k = 54 would hold
    it only with 64-bit floats (and integers); only the first T values are checked."""
    with pytest.raises(ConfigError) as e:
        COUNTERS["binary"](noise="secure")._check(_spec([0.5, 1, 0.3, 1]))
    msg = str(e.value)
    assert msg.startswith("grid_k: stream value 0.5 (step 1) is not a multiple of 2^-0")
    assert "grid_k=54 holds every value exactly only with x64=true" in msg
    assert "(0.3 is 5404319552844595/2^54 as a double)" in msg
    assert "\n" not in msg
    COUNTERS["binary"](noise="secure")._check(_spec([1, 0, 0.5], horizon=2))


# In process, as tests/test_cli_errors.py: compose + `prepare` (which traces the agents' step)
# through `preflight`; one line each, naming the field first.
GRID_INPUTS = [
    (
        ["env=continual_fixed", "env.sequence=[0.5,1,0.3,1]", "horizon=4", "agents=[counter_tree]",
         "agents.counter_tree.noise=secure"],
        "agents.counter_tree.grid_k: stream value 0.5 (step 1) is not a multiple of 2^-0",
    ),
    (
        ["env=continual_fixed", "env.sequence=[1,0.75,0]", "horizon=3",
         "agents=[counter_tree_laplace]", "agents.counter_tree_laplace.grid_k=1"],
        "agents.counter_tree_laplace.grid_k: stream value 0.75 (step 2) is not a multiple of"
        " 2^-1 and would be rounded (1 of 3 values); grid_k=2 holds every value exactly;",
    ),
    (
        ["env=continual_bernoulli", "agents=[counter_sqrt]", "agents.counter_sqrt.noise=secure",
         "agents.counter_sqrt.clip=true", "agents.counter_sqrt.bound=0.75",
         "agents.counter_sqrt.grid_k=1"],
        "agents.counter_sqrt.grid_k: the stream's law (values in {0, 1}, clipped to 0.75) has"
        " values off the grid 2^-1",
    ),
    (
        ["env=continual_bernoulli", "agents=[counter_tree]", "agents.counter_tree.snap=maybe"],
        "agents.counter_tree.snap: must be true or false (got 'maybe')",
    ),
    (
        ["env=continual_bernoulli", "agents=[counter_honaker]", "agents.counter_honaker.snap=true"],
        "agents.counter_honaker.snap: used only with noise=secure",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "message"), GRID_INPUTS, ids=lambda x: str(x)[:60])
def test_grid_inputs_are_one_line_naming_the_field(overrides, message):
    from experiments.preflight import preflight
    from experiments.run import _conf_dir, prepare

    args = [a for a in ["-m", "horizon=64", "seeds=2"] if a.split("=")[0] not in str(overrides)]
    errors = preflight([*args, *overrides], _conf_dir(), prepare)
    assert len(errors) == 1 and errors[0].startswith(message), errors


def test_refusal_through_the_cli_exits_2_before_anything_runs(tmp_path):
    """The issue's example: exit 2, one line naming grid_k, no run directory."""
    d = tmp_path / "run"
    proc = cli("run", "env=continual_fixed", "env.sequence=[0.5,1,0.3,1]", "horizon=4",
               "agents=[counter_tree]", "agents.counter_tree.noise=secure", "seeds=2",
               "progress=false", f"hydra.run.dir={d}")  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "regretlab: error: agents.counter_tree.grid_k: stream value 0.5 (step 1) is not a"
        " multiple of 2^-0"
    )
    assert "snap=true" in lines[0]
    assert not d.exists(), files_under(d)  # no run directory, not even an empty one


# --------------------------------------------------------------------------- the oracle
def test_oracle_is_d_var_plus_the_bias_of_the_counted_values():
    """`ContinualCounting.oracle` against closed forms: binary tree, research, ρ = 1/2: per
    coordinate Var_t = popcount(t) L d (Dwork et al. 2010; L = ⌊log2 T⌋ + 1 nodes per element,
    σ² = d L/(2ρ) for the joint ℓ2-sensitivity of d coordinates), summed over d = 2 coordinates
    of a Bernoulli stream (unbiased); a snapped fixed stream (d = 1) adds
    (Σ_{s<=t} (round(2x_s)/2 - x_s))²; a clipped random stream has a random bias: no oracle."""
    T, L = 16, 5
    popcount = np.array([bin(t).count("1") for t in range(1, T + 1)])
    bits = continual_bernoulli(0.3, d=2)
    got = bits.oracle(bits.default_params(), COUNTERS["binary"](), T)["sq_error"]
    np.testing.assert_allclose(got, 2 * 2 * popcount * L, rtol=1e-12)
    clipped = COUNTERS["binary"](bound=0.5, clip=True)
    assert bits.oracle(bits.default_params(), clipped, T) == {}
    x = np.array([0.25, 1, 0.3, 0.5, 0.75, 0, 0.125, 1] * 2)
    env = continual_fixed(x.tolist())
    secure = COUNTERS["binary"](noise="secure", grid_k=1, snap=True, rho=0.5)
    got = env.oracle(env.default_params(), secure, T)["sq_error"]
    x32 = x.astype(np.float32).astype(np.float64)  # what a float32 run counts
    bias = np.cumsum(np.round(x32 * 2) / 2 - x32)
    # secure node noise: discrete Gaussian, σ² = L/(2ρ) in value units (Δ_g = 2 on the 1/2
    # grid); its variance is σ² up to 8π²σ⁴e^{-2π²σ²} (Canonne, Kamath & Steinke 2020), < 1e-100
    np.testing.assert_allclose(got, popcount * L + bias**2, rtol=1e-12)


def test_snap_counted_and_summary_figures_check_themselves(tmp_path):
    """A secure binary tree with snap=true on a fixed stream, T = 16, 400 seeds, every round
    recorded: the snapping line and summary.json's counts equal a NumPy count; the self-check
    figures equal a NumPy computation from metrics.parquet; the oracle beside them is the closed
    form; the run agrees with it (|z| < 4: with fixed seeds this is deterministic, and a correct
    run leaves it with probability 6e-5); `regretlab-table` prints the same figures."""
    from experiments import tables

    T, seeds, L = 16, 400, 5
    x = [0.25, 1, 0.3, 0.5, 0.75, 0, 0.125, 1] * 2
    d = tmp_path / "run"
    proc = cli("run", "env=continual_fixed", f"env.sequence=[{','.join(map(str, x))}]",
               f"horizon={T}", f"seeds={seeds}", "record.grid=every", "agents=[counter_tree]",
               "agents.counter_tree.noise=secure", "agents.counter_tree.source=key",
               "agents.counter_tree.grid_k=1", "agents.counter_tree.snap=true", "plot=false",
               "progress=false", f"hydra.run.dir={d}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    x32 = np.asarray(x, np.float32).astype(np.float64)
    change = np.abs(np.round(x32 * 2) / 2 - np.asarray(x))
    n_snapped, largest = int(np.sum(change > 0)), float(change.max())
    # on the 1/2 grid (round half to even): 0.25 -> 0, 0.3 -> 0.5, 0.75 -> 1, 0.125 -> 0
    assert (n_snapped, largest) == (8, 0.25)
    summary = json.loads((d / "summary.json").read_text())
    agent = summary["agents"]["counter_tree"]
    info = agent["info"]["input_grid"]
    assert (info["snapped"], info["values"], info["grid_k"]) == (n_snapped, T, 1)
    assert info["largest_change"] == pytest.approx(largest, rel=1e-7)  # float32 0.3 vs 0.3
    assert f"counter_tree: snap=true: {n_snapped} of {T} stream values snapped" in proc.stdout

    df = pd.read_parquet(d / "metrics.parquet").sort_values(["seed", "t"])
    cum = df["sq_error"].to_numpy().reshape(seeds, T)
    per_seed = cum[:, -1] / T
    steps = np.diff(cum, axis=1, prepend=0.0).mean(axis=0)
    popcount = np.array([bin(t).count("1") for t in range(1, T + 1)])
    bias = np.cumsum(np.round(x32 * 2) / 2 - x32)
    oracle = popcount * L + bias**2  # ρ = 1/2: Var_t = popcount(t) L; d = 1
    check = agent["oracle"]["sq_error"]
    mean, top = check["mean"], check["max"]
    assert check["per_step"]
    assert mean["value"] == pytest.approx(per_seed.mean(), rel=1e-12)
    assert mean["se"] == pytest.approx(per_seed.std(ddof=1) / math.sqrt(seeds), rel=1e-12)
    assert mean["oracle"] == pytest.approx(oracle.mean(), rel=1e-9)
    assert top["value"] == pytest.approx(steps.max(), rel=1e-12)
    assert top["t"] == [int(np.argmax(steps)) + 1] * 2
    assert top["oracle"] == pytest.approx(oracle.max(), rel=1e-9)
    assert top["oracle_t"] == [int(np.argmax(oracle)) + 1] * 2
    assert top["at_oracle_t"] == pytest.approx(steps[np.argmax(oracle)], rel=1e-12)
    assert abs(mean["z"]) < 4 and abs(top["z"]) < 4, check

    printed = parse_table(proc.stdout.split("self-check against the exact oracle")[1])
    row = printed["counter_tree"]
    assert row["oracle mean"] == f"{mean['oracle']:.4g}" and row["z"] == f"{mean['z']:.2f}"
    assert row["z at oracle's t"] == f"{top['z']:.2f}"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert tables.main([str(d)]) == 0
    tabled = parse_table(out.getvalue().split("self-check against the exact oracle")[1])
    assert tabled == printed


def test_maxsum_counters_get_the_records_grid(monkeypatch):
    """MaxSum agents quantise nothing (research noise only); the env still declares its records'
    grid and `CounterMaxSum` passes it to its counters (whose secure mode would check it)."""
    from privacy.counters import Counter
    from privacy.maxsum import ContinualMaxSum, CounterMaxSum
    from privacy.streams import FixedStream

    env = ContinualMaxSum(FixedStream(((0.5, 1.0), (1.0, 0.0))))
    spec = env.spec(env.default_params(), 2)
    assert spec.inputs.values == (0.0, 0.5, 1.0)
    seen = []
    original = Counter.init
    monkeypatch.setattr(
        Counter, "init", lambda self, key, s: seen.append(s) or original(self, key, s)
    )
    state = jax.eval_shape(lambda key: CounterMaxSum().init(key, spec), jax.random.key(0))
    assert state.total.shape == (2,) and seen[0].inputs is spec.inputs
    assert ContinualSpec(2, 2, 1.0).inputs is None  # direct API use: nothing declared
