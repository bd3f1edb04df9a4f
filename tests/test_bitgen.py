"""The engine's bulk generator (`experiments.bitgen`): xoshiro128++ against an independent
pure-Python implementation of Blackman & Vigna's reference code, then the laws of its uniform
and normal transforms, independence across streams and steps, and determinism.

Tolerances: with M samples a KS p-value is uniform under the null, so each `> 1e-3` check fails
by chance with probability 1e-3; means and variances are checked within 5 standard errors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from experiments import bitgen
from experiments.protocol import NORMAL, UNIFORM, Draw
from experiments.rollout import draw_steps

ROOT = Path(__file__).resolve().parents[1]
MASK = 0xFFFFFFFF


def _reference_xoshiro128pp(state: list[int], n: int) -> list[int]:
    """xoshiro128++ 1.0 as in Blackman & Vigna's reference C code, in Python integers."""

    def rotl(x: int, k: int) -> int:
        return ((x << k) | (x >> (32 - k))) & MASK

    s = list(state)
    out = []
    for _ in range(n):
        out.append((rotl((s[0] + s[3]) & MASK, 7) + s[0]) & MASK)
        t = (s[1] << 9) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 11)
    return out


def test_xoshiro_step_matches_the_reference_code():
    states = [[1, 2, 3, 4], [0xDEADBEEF, 0x12345678, 0xFFFFFFFF, 0x80000000]]
    for state in states:
        s = tuple(jnp.asarray(v, jnp.uint32) for v in state)
        got = []
        for _ in range(20):
            s, word = bitgen.xoshiro128pp(s)
            got.append(int(word))
        assert got == _reference_xoshiro128pp(state, 20)


def test_words_are_the_streams_seeded_by_the_keys_bits():
    key = jax.random.key(3)
    w = np.asarray(bitgen.words(key, 12, 3))
    seed = np.asarray(jax.random.bits(key, (4, 3), jnp.uint32))
    for j in range(3):
        assert w[:, j].tolist() == _reference_xoshiro128pp([int(v) for v in seed[:, j]], 12)


def test_uniform_and_normal_laws():
    key = jax.random.key(11)
    u = np.asarray(bitgen.uniform(key, (100, 4000))).ravel()
    z = np.asarray(bitgen.normal(jax.random.fold_in(key, 1), (100, 4000))).ravel()
    m = u.size
    assert u.dtype == np.float32 and z.dtype == np.float32
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / m)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(z.mean()) < 5 / np.sqrt(m)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / m)
    assert np.abs(z).max() < 5.5  # V never reaches ±1: finite normals
    # The grid is exact: float32 uniforms are multiples of 2^-24.
    assert np.all(np.ldexp(u.astype(np.float64), 24) % 1 == 0)


def test_engine_draws_are_independent_across_steps_seeds_and_names():
    """Thompson-like draws of 20 numbers per step for 2000 seeds: sums over a step and over
    steps are exactly N(0, n) when the numbers are independent N(0, 1)."""
    spec = {"x": Draw(NORMAL, (20,)), "u": Draw(UNIFORM, (20,))}
    keys = jax.random.split(jax.random.key(0), 2000)
    draws = jax.jit(jax.vmap(lambda k: draw_steps(k, 0, 300, {}, spec)[1]))(keys)
    x, u = np.asarray(draws["x"]), np.asarray(draws["u"])  # (2000, 300, 20)
    across_numbers = x.sum(axis=2).ravel() / np.sqrt(20)
    across_steps = x.sum(axis=1).ravel() / np.sqrt(300)  # across blocks of 100 steps, too
    for s in (across_numbers, across_steps):
        assert stats.kstest(s, "norm").pvalue > 1e-3
    m = x[:, :-1].size
    assert abs(np.corrcoef(x[:, :-1].ravel(), x[:, 1:].ravel())[0, 1]) < 5 / np.sqrt(m)
    assert abs(np.corrcoef(x[:-1].ravel(), x[1:].ravel())[0, 1]) < 5 / np.sqrt(m)  # seeds
    assert abs(np.corrcoef(x.ravel(), u.ravel())[0, 1]) < 5 / np.sqrt(x.size)  # two names
    again = jax.jit(jax.vmap(lambda k: draw_steps(k, 0, 300, {}, spec)[1]))(keys)
    np.testing.assert_array_equal(np.asarray(again["x"]), x)  # deterministic


_X64 = """
import json, jax
jax.config.update("jax_enable_x64", True)
import numpy as np
from experiments import bitgen
u = np.asarray(bitgen.uniform(jax.random.key(1), (50, 2000)))
z = np.asarray(bitgen.normal(jax.random.key(2), (50, 2000)))
print(json.dumps({"dtypes": [str(u.dtype), str(z.dtype)], "u": u.ravel().tolist()[:5000],
                  "z": z.ravel().tolist()[:5000], "grid": bool(np.all(np.ldexp(u, 53) % 1 == 0))}))
"""


def test_float64_draws_under_x64():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", _X64], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["dtypes"] == ["float64", "float64"] and res["grid"]
    assert stats.kstest(res["u"], "uniform").pvalue > 1e-3
    assert stats.kstest(res["z"], "norm").pvalue > 1e-3
