"""`experiments.prng`: Philox4x32-10 against the Random123 known answers, determinism, and the
laws of the samples against scipy with fixed seeds.

Tolerances. The seeds are fixed, so every check is deterministic; the bounds are chosen so that a
correct sampler would fail them with probability < 1e-3 for a fresh seed: the KS statistic D of
n iid samples satisfies P(sqrt(n) D > 1.95) = 1e-3 (Kolmogorov's limit law), and the 24-bit grid
of the samples moves the CDF by at most 2^-24, far below 1.95 / sqrt(n); moments use 5 standard
errors (P(|N(0, 1)| > 5) = 6e-7).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from experiments import prng

ROOT = Path(__file__).resolve().parents[1]
N = 200_000
KS = 1.95  # sqrt(n) D bound: P(K > 1.95) = 1e-3 under the null (Kolmogorov distribution)
Z = 5.0  # moment bound in standard errors

LAWS = {
    "uniform": (prng.uniform, stats.uniform()),
    "normal": (prng.normal, stats.norm()),
    "exponential": (prng.exponential, stats.expon()),
    "laplace": (prng.laplace, stats.laplace()),
}
CENTRAL4 = {"uniform": 1 / 80, "normal": 3.0, "exponential": 9.0, "laplace": 24.0}


def test_philox_known_answers():
    """Philox4x32-10 on the three known-answer vectors of Random123 (kat_vectors: counter, key
    -> output), the same as the reference implementation's."""
    cases = [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ]
    for counter, key, want in cases:
        u = lambda xs: tuple(jnp.asarray(x, jnp.uint32) for x in xs)
        got = prng.philox4x32(u(key), u(counter))
        assert tuple(int(x) for x in got) == want


EDGES = np.asarray(
    [0, 1, 2, 3, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF, 0x10000, 0x10001, 0x1FFFF, 0xFFFF0000]
    + [0xFFFF0001, 0xFFFEFFFF, 0x7FFFFFFF, 0x80000000, 0x80000001, 0xFFFFFFFE, 0xFFFFFFFF]
    + [int(m) for m in prng.PHILOX_M],
    np.uint32,
)


def _numpy_mulhi(x: np.ndarray, m: int) -> np.ndarray:
    return ((x.astype(np.uint64) * np.uint64(m)) >> np.uint64(32)).astype(np.uint32)


def test_mulhi_split_is_exact():
    """`mulhi_split` (uint32 arithmetic only) equals the high word of NumPy's exact uint64
    product: every pair of the edge values (0, 1, 2^32 - 1, both sides of the 2^16 and 2^31
    boundaries, the Philox multipliers), 10^6 random words against each Philox multiplier and
    2^16 random words against each of 16 random multipliers; and it equals `lax.mulhi`."""
    rng = np.random.default_rng(0)
    x_random = rng.integers(0, 2**32, 10**6, dtype=np.uint64).astype(np.uint32)
    m_random = rng.integers(0, 2**32, 16, dtype=np.uint64)
    ms = [*(int(e) for e in EDGES), *(int(m) for m in m_random)]
    few, many = np.concatenate([EDGES, x_random[: 1 << 16]]), np.concatenate([EDGES, x_random])

    @jax.jit
    def split_all(few, many):  # every multiplier in one program (speed only)
        return [prng.mulhi_split(many if m in prng.PHILOX_M else few, m) for m in ms]

    for m, got in zip(ms, split_all(few, many), strict=True):
        x = many if m in prng.PHILOX_M else few
        got = np.asarray(got)
        np.testing.assert_array_equal(got, _numpy_mulhi(x, m), err_msg=hex(m))
        want = jax.lax.mulhi(jnp.asarray(x), jnp.full(x.shape, m, jnp.uint32))
        np.testing.assert_array_equal(got, np.asarray(want), err_msg=hex(m))


def test_philox_with_the_split_mulhi_is_the_same(monkeypatch):
    """Philox4x32-10 with `mulhi_split` in place of `lax.mulhi` (the path taken inside
    `jax.shard_map`) gives the same known answers and the same samples bit for bit."""
    key = jax.random.key(13)
    before = {name: np.asarray(f(key, (4099,))) for name, (f, _) in LAWS.items()}
    monkeypatch.setattr(prng, "mulhi", prng.mulhi_split)
    test_philox_known_answers()
    for name, (f, _) in LAWS.items():
        np.testing.assert_array_equal(np.asarray(f(key, (4099,))), before[name], err_msg=name)


SHARDED = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, PartitionSpec as P
from experiments import prng
keys = jax.random.split(jax.random.key(3), 4)
draw = jax.vmap(lambda k: (prng.normal(k, (257,)), prng.uniform(k, (3,))))
mesh = Mesh(np.asarray(jax.devices()), ("d",))
sharded = jax.jit(jax.shard_map(draw, mesh=mesh, in_specs=P("d"), out_specs=P("d")))
assert len(jax.devices()) == 2
for a, b in zip(sharded(keys), jax.jit(draw)(keys)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
print("ok")
"""


def test_draws_inside_shard_map_on_two_devices():
    """Inside `jax.shard_map` over two host devices (a fresh process: the device count is set
    before JAX starts) the draws lower (``lax.mulhi`` does not there) and equal the unsharded
    draws bit for bit."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "REGRETLAB_HOST_DEVICES")}
    env.update(JAX_NUM_CPU_DEVICES="2", JAX_PLATFORMS="cpu")
    r = subprocess.run(
        [sys.executable, "-c", SHARDED],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert r.returncode == 0 and r.stdout.split()[-1] == "ok", r.stderr[-3000:]


@pytest.mark.parametrize("name", list(LAWS))
def test_deterministic_and_prefix_stable(name):
    """Same key and shape -> bit-identical samples, jitted or not; a prefix of a longer draw is
    the shorter draw (sample j uses word j); vmap over keys is the per-key draw; other keys and
    other shapes give other samples."""
    f = LAWS[name][0]
    key = jax.random.key(7)
    a = np.asarray(f(key, (1001,)))
    np.testing.assert_array_equal(a, np.asarray(f(key, (1001,))))
    np.testing.assert_array_equal(a, np.asarray(jax.jit(lambda k: f(k, (1001,)))(key)))
    keys = jax.random.split(key, 3)

    @jax.jit  # the other draws in one compiled program (speed only; jitted = eager, checked above)
    def draws(key, keys):
        per_key = [f(keys[i], (50,)) for i in range(3)]
        batched = jax.vmap(lambda k: f(k, (50,)))(keys)
        return f(key, (333,)), f(key, (10, 100)), batched, per_key, f(key, ()), f(key, (2, 3))

    short, square, batched, per_key, scalar, small = draws(key, keys)
    np.testing.assert_array_equal(a[:333], np.asarray(short))
    np.testing.assert_array_equal(a[:1000].reshape(10, 100), np.asarray(square))
    batched = np.asarray(batched)
    for i in range(3):
        np.testing.assert_array_equal(batched[i], np.asarray(per_key[i]))
    assert not np.array_equal(batched[0], batched[1])
    assert scalar.shape == () and small.dtype == jnp.float32


@pytest.mark.parametrize("name", list(LAWS))
def test_law_ks(name):
    """Kolmogorov–Smirnov against scipy's law, n = 2e5, fixed seed: sqrt(n) D <= 1.95."""
    f, law = LAWS[name]
    x = np.asarray(f(jax.random.key(2024), (N,)), np.float64)
    d = stats.kstest(x, law.cdf).statistic
    assert math.sqrt(N) * d <= KS, d


@pytest.mark.parametrize("name", list(LAWS))
def test_moments(name):
    """Mean and variance within 5 SE of the law's (SE of the variance from the 4th central
    moment: sqrt((μ4 - σ⁴) / n)); normal and Laplace: also the 4th moment (kurtosis 3 and 6)
    within 5 SE, which checks the tails."""
    f, law = LAWS[name]
    x = np.asarray(f(jax.random.key(11), (N,)), np.float64)
    mean, var = law.mean(), law.var()
    mu4 = CENTRAL4[name]
    assert abs(x.mean() - mean) <= Z * math.sqrt(var / N)
    assert abs(x.var() - var) <= Z * math.sqrt((mu4 - var**2) / N)
    if name in ("normal", "laplace"):  # E X^4 = 3 (normal), 24 (Laplace(1)); Var X^4 = E X^8 - ..
        m4, m8 = (3.0, 105.0) if name == "normal" else (24.0, 40320.0)
        assert abs(np.mean(x**4) - m4) <= Z * math.sqrt((m8 - m4**2) / N)


def test_grids_are_exact():
    """Uniforms are multiples of 2^-24 in [0, 1); normals are √2 erfinv(V) with V an odd
    multiple of 2^-24, so their law is exactly symmetric: the same words give -Z for the
    mirrored V; exponentials lie in [0, 24 log 2]; tails |Z| <= Φ^-1(1 - 2^-25)."""
    key = jax.random.key(3)
    u = np.asarray(prng.uniform(key, (N,)), np.float64) * 2**24
    assert np.all(u == np.round(u)) and u.min() >= 0 and u.max() <= 2**24 - 1
    v = np.asarray(prng._symmetric(key, N, np.dtype(np.float32)), np.float64) * 2**24
    assert np.all(v == np.round(v)) and np.all(np.abs(v) % 2 == 1) and np.abs(v).max() < 2**24
    z = np.asarray(prng.normal(key, (N,)), np.float64)
    assert np.abs(z).max() <= stats.norm.isf(2.0**-25) * (1 + 1e-5)
    e = np.asarray(prng.exponential(key, (N,)), np.float64)
    assert e.min() >= 0 and e.max() <= 24 * math.log(2) * (1 + 1e-6)
    grid = jnp.asarray([-1 + 2.0**-24, -(2.0**-24), 2.0**-24, 1 - 2.0**-24], jnp.float32)
    zz = np.asarray(np.sqrt(2.0).astype(np.float32) * jax.lax.erf_inv(grid))
    np.testing.assert_array_equal(zz, -zz[::-1])


def test_independent_keys_uncorrelated():
    """Samples of distinct keys (split, fold_in) are uncorrelated: |r| <= 5/sqrt(n)."""
    key = jax.random.key(5)
    a, b = jax.random.split(key)
    for k1, k2 in ((a, b), (key, jax.random.fold_in(key, 0)), (a, jax.random.fold_in(a, 1))):
        x, y = (np.asarray(prng.normal(k, (N,)), np.float64) for k in (k1, k2))
        assert abs(np.corrcoef(x, y)[0, 1]) <= Z / math.sqrt(N)


def test_float64_and_half_dtypes():
    """float64 (x64 on): 53-bit uniforms (multiples of 2^-53), normals by the same inversion,
    KS as above; float16 and bfloat16 are float32 samples rounded."""
    with jax.enable_x64(True):
        key = jax.random.key(9)
        u = np.asarray(prng.uniform(key, (N,), jnp.float64))
        assert u.dtype == np.float64 and np.all(u * 2.0**53 == np.round(u * 2.0**53))
        assert np.mean(u * 2**24 != np.floor(u * 2**24)) > 0.99  # finer than float32's grid
        for name, (f, law) in LAWS.items():
            x = np.asarray(f(key, (N,), jnp.float64))
            assert x.dtype == np.float64, name
            assert math.sqrt(N) * stats.kstest(x, law.cdf).statistic <= KS, name
    for dt in (jnp.float16, jnp.bfloat16):
        z = prng.normal(jax.random.key(1), (100,), dt)
        assert z.dtype == dt
        np.testing.assert_array_equal(
            np.asarray(z, np.float32), np.asarray(prng.normal(jax.random.key(1), (100,)).astype(dt))
        )
    with pytest.raises(ValueError, match="floating"):
        prng.normal(jax.random.key(1), (3,), jnp.int32)


def test_other_key_implementations():
    """rbg keys (four words) draw their words with `jax.random.bits`: same law, deterministic;
    a batch of keys is refused as `jax.random` refuses it."""
    key = jax.random.key(4, impl="rbg")
    x = np.asarray(prng.normal(key, (N,)), np.float64)
    np.testing.assert_array_equal(x, np.asarray(prng.normal(key, (N,))))
    assert math.sqrt(N) * stats.kstest(x, "norm").statistic <= KS
    with pytest.raises(ValueError, match="single key"):
        prng.normal(jax.random.split(jax.random.key(0), 2), (3,))
