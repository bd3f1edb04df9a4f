"""Continual-counting benchmark: the engine's counters against vectorised NumPy references
(issue 4, Performance; bench/README.md).

    uv run python bench/privacy.py            # full run, writes bench/privacy_results.md
    uv run python bench/privacy.py --quick    # small sizes, prints only

Two configurations, ρ = 1/2, float32 (the engine's default, x64 off):

* ``main``: the counter as an agent of `privacy.continual.ContinualCounting` (Bernoulli(1/2)
  stream, d = 1) run by `experiments.simulate.simulate`, T = 2^20, N = 1000 streams (seeds),
  default log grid; checked by the per-stream MSE = final ``sq_error`` / T, whose mean over the
  independent streams must lie within 4 SE of the exact mean variance σ² mean_t ‖B[t]‖²
  (`counter.variance`, from `privacy.factorization`).
* ``r2``: noise only (reproduction item R2, docs/privacy.md), the sum over N = 10^5 streams of
  e_t² at T = 2^12, `privacy.counters.noise_sum_of_squares` jitted (batches of 10^4 streams; the
  scan-free counters run each batch in chunks of streams that stay in cache, as NumPy's blocks);
  checked by the per-step variance: max_t |v̂_t / Var_t - 1| <= 6.7 sqrt(2/N) (3% at N = 10^5, as in
  item R2: the relative SE of v̂_t is sqrt(2/N), and 6.7 SE is never reached by the max over 4096
  steps).

* ``path`` (``--configs path``; not in the default run): the R2 computation at the main size,
  T = 2^20, N = 1000 streams, in batches of <= 2^27 elements. The binary tree's and Honaker's
  noise paths are scan-free (level by level, `BinaryTree.path_from_nodes`,
  `Honaker.path_from_draws`), BLT's runs in blocks of 64 steps (`BLTStrategy.paths_from_draws`),
  the square root's is one FFT per stream (`SqrtToeplitz.noise_paths_closed_form`), smooth's
  scans over steps. Checked like R2 (the tolerance 6.7 sqrt(2/N) is 30% at N = 1000).

NumPy references (same computation, vectorised over a block of streams at a time, blocks of
about 2^22 elements so memory stays bounded; PCG64, `standard_normal(dtype=float32)`):

* binary tree: every step t creates exactly one node, (b, t >> b) with b = trailing zeros of t,
  and the noise of output t is the noise of t - lowbit(t) plus that node's draw. Level by level
  from the top, position m 2^b (m odd) gets position (m - 1) 2^b plus a fresh N(0, 1): T normals
  and T adds per stream, in place in one (n, T + 1) buffer;
* Honaker: the estimates of all T + T/2 + ... nodes level by level (a_j z + (1 - a_j)(left +
  right)), then the same top-down prefix pass over the estimates;
* smooth: the same prefix pass over the sorted distinct prefixes e_t >> b of the leaves
  e_t = w_{t+1} (`privacy.factorization.smooth_leaves`), through precomputed parent indices;
* sqrt and BLT: the causal convolution b * z (b: the first column of B) by real FFTs of length 2T.

The main configuration also draws the Bernoulli stream, takes prefix sums, releases
S_t + σ n_t, subtracts S_t and records Σ e², Σ |e| at the engine's grid and max |e|, as the
engine does. Each measurement runs in a fresh subprocess, so its peak RSS (VmHWM) is its own;
the engine's compile time is measured apart from its run time; wall and process-CPU seconds
and the 1-minute load average are recorded (the machine is shared).

The sqrt counter runs the main configuration with `--sqrt-main-streams` (default 100) streams:
it holds T floats of noise path per stream, 4 GiB at N = 1000 plus FFT buffers at init. Its R2
run is cut to fit `--sqrt-budget` seconds if a probe finds it too slow.

A profile (skip with ``--no-profile``) breaks the engine's binary counter down at T = 2^16,
N = 1000 in one process: the full engine; the engine with a noise-free counter; the counter
alone (act + update as `noise_streams(agent=True)`; the same with the draws replaced by a cheap
per-stream function; the default R2 path); one advance per step; advance with normals drawn in
bulk; the random numbers alone; the NumPy algorithm written in jax.numpy (one jit, no scan).
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This script shares its name with the `privacy` package: import from the repository root.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from bench._common import ChunkClock  # noqa: E402
from bench._common import machine_facts as common_facts  # noqa: E402
from experiments.protocol import step_key  # noqa: E402
from experiments.simulate import make_grid, simulate  # noqa: E402
from privacy import factorization as fz  # noqa: E402
from privacy.continual import ContinualSpec, continual_bernoulli  # noqa: E402
from privacy.counters import (  # noqa: E402
    COUNTERS,
    BinaryTree,
    Counter,
    noise_streams,
    noise_sum_of_squares,
)

RHO = 0.5  # σ² = loss (item R2)
# noise_streams(agent=...) selects the act/update path where privacy/counters/ offers it
_HAS_AGENT = "agent" in inspect.signature(noise_streams).parameters
P = 0.5  # Bernoulli stream of the main configuration
MAIN_Z = 4.0  # |mean MSE - oracle| / SE bound: P(|N(0,1)| > 4) = 6e-5 per check
R2_SE = 6.7  # per-step bound in SEs of v̂_t (item R2: 3% at N = 1e5)
NP_BLOCK = 1 << 22  # elements per NumPy block (~16 MB per float32 array)
R2_BATCH = 10_000  # streams per jitted call (as tests/test_privacy_counters.py)
MECHS = ("binary", "honaker", "smooth", "sqrt", "blt")


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS, VmHWM), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    """Peak resident set size of this process (VmHWM), MB. Not `ru_maxrss`: on Linux that
    keeps the high-water mark across exec, so a child started by a big parent reports at least
    the parent's RSS at fork."""
    return _status_mb("VmHWM")


def rss_now_mb() -> float:
    """Current resident set size (VmRSS), MB."""
    return _status_mb("VmRSS")


# =========================================================================== NumPy references
NoiseFn = Callable[[np.random.Generator, int], np.ndarray]


def node_std(mech: str, T: int) -> float:
    """The counter's per-node noise std σ (`node_scale`; `sigma` in older versions)."""
    c = COUNTERS[mech](rho=RHO)
    f = getattr(c, "node_scale", None) or c.sigma
    return float(f(ContinualSpec(T, 1, 1.0)))


def np_binary(T: int) -> NoiseFn:
    """(n, T) binary-tree noise in node-σ units: n[t] = n[t - lowbit(t)] + z_t."""

    def noise(rng: np.random.Generator, n: int) -> np.ndarray:
        buf = np.zeros((n, T + 1), np.float32)  # buf[:, m 2^b] = noise of the prefix m 2^b
        for b in range(T.bit_length() - 1, -1, -1):
            s = 1 << b
            dst = buf[:, s :: 2 * s]  # odd multiples of 2^b: one new node each
            k = dst.shape[1]
            z = rng.standard_normal((n, k), dtype=np.float32)
            np.add(buf[:, :: 2 * s][:, :k], z, out=dst)
        return buf[:, 1:]

    return noise


def _prefix_pass(top: np.ndarray, levels: list[np.ndarray]) -> np.ndarray:
    """Top-down prefix noise on the grid 0..T: level b adds `levels[b]` at odd multiples of 2^b."""
    buf = top
    for b in range(len(levels) - 1, -1, -1):
        s = 1 << b
        dst = buf[:, s :: 2 * s]
        np.add(buf[:, :: 2 * s][:, : dst.shape[1]], levels[b][:, : dst.shape[1]], out=dst)
    return buf[:, 1:]


def np_honaker(T: int) -> NoiseFn:
    """(n, T) online-Honaker noise: node estimates bottom-up, then the binary prefix pass."""
    L = fz.binary_depth(T)
    a = fz.honaker_weights(L).astype(np.float32)

    def noise(rng: np.random.Generator, n: int) -> np.ndarray:
        est = [rng.standard_normal((n, T), dtype=np.float32)]  # level 0: nodes m = 1..T
        for j in range(1, L):
            c = T >> j  # level-j nodes m = 1..c; children 2m - 1, 2m at columns 2i, 2i + 1
            e = rng.standard_normal((n, c), dtype=np.float32)
            e *= a[j]
            kids = est[-1][:, 0 : 2 * c : 2] + est[-1][:, 1 : 2 * c : 2]
            kids *= 1 - a[j]
            e += kids
            est.append(e)
        # odd m = 2i + 1 at level b is est[b][:, 2i]
        odd = [e[:, ::2] for e in est]
        return _prefix_pass(np.zeros((n, T + 1), np.float32), odd)

    return noise


def np_smooth(T: int) -> NoiseFn:
    """(n, T) smooth-binary noise: prefixes e_t >> b level by level via parent indices."""
    ends = fz.smooth_leaves(T)[0]  # e_t = w_{t+1}, increasing
    D = fz.smooth_depth(T)
    P = [np.unique(ends >> b) for b in range(D + 1)]  # P[D] = {0}
    parent = [np.searchsorted(P[b + 1], P[b] >> 1) for b in range(D)]
    odd = [np.flatnonzero(P[b] & 1) for b in range(D)]  # used nodes (b, m), m odd

    def noise(rng: np.random.Generator, n: int) -> np.ndarray:
        acc = np.zeros((n, 1), np.float32)
        for b in range(D - 1, -1, -1):
            acc = acc[:, parent[b]]
            acc[:, odd[b]] += rng.standard_normal((n, odd[b].size), dtype=np.float32)
        return acc  # P[0] = ends in order

    return noise


def noise_matrix(mech: str, T: int) -> np.ndarray:
    """Dense B (small T): `privacy.factorization`'s, or Toeplitz(b) of the optimised BLT."""
    if mech == "blt":
        return fz.toeplitz(COUNTERS["blt"](rho=RHO).strategy.noise_coefficients(T))
    return fz.factorisation(mech, T).B


def np_sqrt(T: int) -> NoiseFn:
    """(n, T) square-root-factorisation noise Σ_{s<=t} f_{t-s} z_s by real FFT of length 2T."""
    return np_toeplitz(fz.sqrt_coefficients(T))


def np_blt(T: int) -> NoiseFn:
    """(n, T) BLT noise (B z)_t, B = A C^{-1} = Toeplitz(b) of the counter's optimised BLT."""
    return np_toeplitz(COUNTERS["blt"](rho=RHO).strategy.noise_coefficients(T))


def np_toeplitz(coefs: np.ndarray) -> NoiseFn:
    """(n, T) Toeplitz noise Σ_{s<=t} coefs_{t-s} z_s by real FFT of length 2T."""
    T = coefs.size
    F = np.fft.rfft(coefs.astype(np.float32), 2 * T)

    def noise(rng: np.random.Generator, n: int) -> np.ndarray:
        z = rng.standard_normal((n, T), dtype=np.float32)
        return np.fft.irfft(np.fft.rfft(z, 2 * T, axis=1) * F, 2 * T, axis=1)[:, :T]

    return noise


NP_NOISE = {
    "binary": np_binary,
    "honaker": np_honaker,
    "smooth": np_smooth,
    "sqrt": np_sqrt,
    "blt": np_blt,
}


def _blocks(N: int, T: int):
    n = max(1, NP_BLOCK // T)
    for lo in range(0, N, n):
        yield lo, min(n, N - lo)


def numpy_main(mech: str, T: int, N: int, seed: int) -> dict[str, np.ndarray]:
    """The engine's main run in NumPy: per-stream Σ e², Σ |e| at the grid, max |e|."""
    sigma = np.float32(node_std(mech, T))
    grid = make_grid(T)
    starts = np.concatenate([[0], grid[:-1]])  # segments (g_{i-1}, g_i] of the grid
    rng = np.random.default_rng(seed)
    noise = NP_NOISE[mech](T)
    sq = np.empty((N, grid.size))
    ab = np.empty((N, grid.size))
    mx = np.empty(N)
    for lo, n in _blocks(N, T):
        x = rng.random((n, T), dtype=np.float32) < P
        S = np.cumsum(x, axis=1, dtype=np.float32)  # exact below 2^24
        err = noise(rng, n) * sigma
        err += S  # the release
        err -= S  # its error
        e2 = np.square(err)
        sq[lo : lo + n] = np.cumsum(np.add.reduceat(e2, starts, axis=1, dtype=np.float64), 1)
        np.abs(err, out=err)
        ab[lo : lo + n] = np.cumsum(np.add.reduceat(err, starts, axis=1, dtype=np.float64), 1)
        mx[lo : lo + n] = err.max(axis=1)
    return {"sq_error": sq[:, -1], "abs_error": ab[:, -1], "max_abs_error": mx}


def numpy_r2(mech: str, T: int, N: int, seed: int) -> np.ndarray:
    """Σ over N streams of e_t², t = 1..T (noise only)."""
    sigma = np.float32(node_std(mech, T))
    rng = np.random.default_rng(seed)
    noise = NP_NOISE[mech](T)
    total = np.zeros(T)
    for _, n in _blocks(N, T):
        e = noise(rng, n) * sigma
        total += np.square(e).sum(axis=0, dtype=np.float64)
    return total


# =========================================================================== engine runs
def engine_main(mech: str, T: int, N: int, seed: int, agent=None) -> dict:
    env = continual_bernoulli(P)
    agent = agent or COUNTERS[mech](rho=RHO)
    clock = ChunkClock()
    res = simulate(env, env.default_params(), agent, T, N, seed=seed, progress=clock)
    return {
        "compile_s": res.compile_seconds,
        "run_s": res.run_seconds,
        "cpu_s": clock.cpu_seconds(T),
        "chunk": res.info["chunk_size"],
        "final": {k: res.final[k] for k in ("sq_error", "abs_error", "max_abs_error")},
    }


def _r2_batches(N: int, T: int) -> tuple[int, int]:
    """(batches, streams per batch): <= R2_BATCH streams and <= 2^27 elements per batch."""
    nb = -(-N // min(R2_BATCH, max(1, (1 << 27) // T)))
    while N % nb:
        nb += 1
    return nb, N // nb


def engine_r2(mech: str, T: int, N: int, seed: int) -> dict:
    """jit(noise_sum_of_squares) (Σ over streams of e_t²) over batches of streams; compile timed
    apart."""
    counter = COUNTERS[mech](rho=RHO)
    spec = ContinualSpec(T, 1, 1.0)
    nb, batch = _r2_batches(N, T)
    f = jax.jit(lambda k: noise_sum_of_squares(counter, spec, k)[:, 0])
    base = jax.random.key(seed)
    t0 = time.perf_counter()
    fc = f.lower(jax.random.split(base, batch)).compile()
    compile_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    total = np.zeros(T)
    for b in range(nb):
        total += np.asarray(fc(jax.random.split(jax.random.fold_in(base, b), batch)), np.float64)
    return {
        "compile_s": compile_s,
        "run_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
        "batch": batch,
        "sum_sq": total,
    }


# =========================================================================== checks
def check_main(mech: str, T: int, final: dict) -> dict:
    """Mean per-stream MSE against the exact mean variance, in standard errors."""
    oracle = float(COUNTERS[mech](rho=RHO).variance(ContinualSpec(T, 1, 1.0)).mean())
    mse = np.asarray(final["sq_error"], np.float64) / T
    se = mse.std(ddof=1) / math.sqrt(mse.size)
    z = (mse.mean() - oracle) / se
    return {
        "mse": float(mse.mean()),
        "se": float(se),
        "oracle": oracle,
        "z": float(z),
        "ok": bool(abs(z) <= MAIN_Z),
    }


def check_r2(mech: str, T: int, N: int, sum_sq: np.ndarray) -> dict:
    """Per-step variance against the oracle: max_t |v̂_t/Var_t - 1| <= 6.7 sqrt(2/N)."""
    var = COUNTERS[mech](rho=RHO).variance(ContinualSpec(T, 1, 1.0))
    ratio = sum_sq / N / var
    tol = R2_SE * math.sqrt(2 / N)
    dev = float(np.max(np.abs(ratio - 1)))
    return {"max_dev": dev, "mean_ratio": float(ratio.mean()), "tol": tol, "ok": dev <= tol}


def verify_numpy(T: int = 21, N: int = 200_000) -> dict[str, float]:
    """Largest |Ĉov - B Bᵀ| in SEs per mechanism (dense factorisation, small T).

    The per-step variance checks do not see which nodes two outputs share; the covariance
    does. SE of entry (i, j): sqrt((Σ_ii Σ_jj + Σ_ij²) / N) (Gaussian fourth moments); over
    T² = 441 entries the max stays below 5 SE.
    """
    rng = np.random.default_rng(12345)
    out = {}
    for mech in MECHS:
        e = NP_NOISE[mech](T)(rng, N).astype(np.float64)
        B = noise_matrix(mech, T)
        cov = B @ B.T
        se = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / N)
        out[mech] = float(np.max(np.abs(e.T @ e / N - cov) / se))
    return out


# =========================================================================== child processes
def child(job: dict) -> dict:
    """One measurement in this (fresh) process; returns timings, memory, check."""
    mech, T, N, seed = job["mech"], job["T"], job["N"], job["seed"]
    out = {**job, "rss_base_mb": rss_now_mb(), "load_before": os.getloadavg()[0]}
    out["counters_sha"] = counters_sha()  # the version this process imported (edited concurrently)
    if job["impl"] == "numpy":
        # the strategy's set-up (BLT: the optimiser, cached) is not timed, as the engine's
        # happens in its compile
        COUNTERS[mech](rho=RHO).variance(ContinualSpec(T, 1, 1.0))
        t0, c0 = time.perf_counter(), time.process_time()
        if job["config"] == "main":
            res = numpy_main(mech, T, N, seed)
        else:
            res = numpy_r2(mech, T, N, seed)
        out.update(compile_s=None, run_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0)
    elif job["config"] == "main":
        r = engine_main(mech, T, N, seed)
        res = r.pop("final")
        out.update(r)
    else:
        r = engine_r2(mech, T, N, seed)
        res = r.pop("sum_sq")
        out.update(r)
    out["check"] = (
        check_main(mech, T, res) if job["config"] == "main" else check_r2(mech, T, N, res)
    )
    out.update(rss_peak_mb=rss_mb(), load_after=os.getloadavg()[0])
    return out


def run_child(job: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps(job)]
    env = dict(os.environ)
    if job.get("unroll"):
        env["REGRETLAB_SCAN_UNROLL"] = str(job["unroll"])  # read by experiments.simulate
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if p.returncode:
        raise RuntimeError(f"child {job} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def sqrt_probe(T: int, N: int) -> float:
    """Engine elements/s of the sqrt counter's noise_streams at (T, N) streams (a short run)."""
    r = run_child({"impl": "engine", "config": "r2", "mech": "sqrt", "T": T, "N": N, "seed": 99})
    return N * T / r["run_s"]


# =========================================================================== profile
class _ExactCounter(Counter):
    """Releases the exact count S_t (no noise, no draws): the engine and env cost alone."""

    def act(self, rng, state, obs):
        return state.total + self._x(obs)

    def update(self, state, obs, action, feedback):
        return state._replace(t=state.t + 1, total=state.total + self._x(obs))


@dataclass(frozen=True)
class _CheapDraws(BinaryTree):
    """The binary tree with its per-step N(0, 1) draws replaced by (k + t) mod 7 - 3, k the
    stream key's first word: cheap, but per stream and step (a constant would be folded away or
    left unbatched by vmap), so the rest of act + update is measured without the RNG."""

    def research_step(self, state, t, key, unit):
        k = jax.random.key_data(key)[0].astype(jnp.int32)
        return self.advance(state, t, jnp.full(self.draw_shape(state), (k + t) % 7 - 3.0))


def _timed(f: Callable, *args) -> dict:
    t0 = time.perf_counter()
    fc = jax.jit(f).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    jax.block_until_ready(fc(*args))
    return {
        "compile_s": compile_s,
        "run_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
    }


def profile(T: int, N: int) -> list[dict]:
    """Where the binary counter's time goes (one process, sequential; see the module doc)."""
    c = COUNTERS["binary"](rho=RHO)
    spec = ContinualSpec(T, 1, 1.0)
    keys = jax.random.split(jax.random.key(0), N)
    block = min(512, T)

    def streams(agent: bool | None, counter=c):  # noise_streams reduced over streams, as R2
        kw = {} if agent is None else {"agent": agent}
        return lambda k: jnp.sum(jnp.square(noise_streams(counter, spec, k, **kw)[..., 0]), 0)

    strat, unit = c.strategy, c.backend.unit
    start = strat.init_state(spec, jnp.result_type(float))

    def advance_once(k):  # one fold_in + normal per step
        def one(key):
            def body(carry, t):
                s, acc = carry
                s, n = strat.advance(s, t, unit(step_key(key, t), strat.draw_shape(s)))
                return (s, acc + jnp.sum(n**2)), None

            steps = jnp.arange(1, T + 1)
            return jax.lax.scan(body, (start, jnp.zeros(())), steps)[0][1]

        return jax.vmap(one)(k)

    def advance_bulk(k):  # normals of `block` steps drawn in one call, fed to the scan
        def one(key):
            def blk(carry, j):
                z = jax.random.normal(jax.random.fold_in(key, j), (block, 1))

                def body(carry, zt):
                    t, s, acc = carry
                    s, n = strat.advance(s, t, zt)
                    return (t + 1, s, acc + jnp.sum(n**2)), None

                return jax.lax.scan(body, carry, z)[0], None

            init = (jnp.ones((), jnp.int32), start, jnp.zeros(()))
            return jax.lax.scan(blk, init, jnp.arange(T // block))[0][2]

        return jax.vmap(one)(k)

    def rng_step(k):  # the counter's per-step draw alone
        def one(key):
            def body(acc, t):
                return acc + jnp.sum(jax.random.normal(jax.random.fold_in(key, t), (1,)) ** 2), None

            return jax.lax.scan(body, jnp.zeros(()), jnp.arange(1, T + 1))[0]

        return jax.vmap(one)(k)

    def rng_bulk(k):  # T normals per stream in one call
        return jax.vmap(lambda key: jnp.sum(jax.random.normal(key, (T,)) ** 2))(k)

    def xla_doubling(k):  # the NumPy binary algorithm in jax.numpy, one jit, no scan
        def one(key):
            buf = jnp.zeros((T + 1,))
            for b in range(T.bit_length() - 1, -1, -1):
                s = 1 << b
                cnt = len(range(s, T + 1, 2 * s))
                z = jax.random.normal(jax.random.fold_in(key, b), (cnt,))
                buf = buf.at[s :: 2 * s].set(buf[:: 2 * s][:cnt] + z)
            return jnp.sum(buf[1:] ** 2)

        return jax.vmap(one)(k)

    rows = []

    def add(key: str, name: str, r: dict) -> None:
        r = {"id": key, "variant": name, **r, "load": os.getloadavg()[0]}
        rows.append(r)
        print(
            f"  profile {name:60s} {N * T / r['run_s']:.3g} el/s "
            f"({_fmt(N * T / r['cpu_s'] if r['cpu_s'] else None)} per CPU-s), "
            f"compile {r['compile_s'] or 0:.1f} s",
            flush=True,
        )

    for key, name, agent in (
        ("sim", "engine: simulate, binary counter", c),
        (
            "sim_exact",
            "engine: simulate, exact counter (no noise, no draws)",
            _ExactCounter(strategy=BinaryTree()),
        ),
    ):
        r = engine_main("binary", T, N, 0, agent=agent)
        r.pop("final")
        add(key, name, r)
    for key, name, f in (
        (
            "act_update",
            "counter alone: act + update per step (noise_streams(agent=True))",
            streams(True) if _HAS_AGENT else streams(None),
        ),
        (
            "no_draws",
            "counter alone: act + update per step, draws replaced by (k + t) mod 7 - 3 (no RNG)",
            streams(True if _HAS_AGENT else None, Counter(strategy=_CheapDraws(), rho=RHO)),
        ),
        (
            "r2_path",
            "counter alone: noise_sum_of_squares (the R2 path)",
            lambda k: noise_sum_of_squares(c, spec, k)[:, 0],
        ),
        (
            "advance_once",
            "counter alone: one advance per step (one fold_in + normal)",
            advance_once,
        ),
        ("advance_bulk", f"counter alone: advance, normals drawn per {block} steps", advance_bulk),
        ("rng_step", "RNG alone: fold_in + normal(1) per step in a scan", rng_step),
        ("rng_bulk", "RNG alone: normal(T) per stream, one call", rng_bulk),
        ("xla", "XLA: the NumPy prefix algorithm in jax.numpy (no scan)", xla_doubling),
    ):
        add(key, name, _timed(f, keys))
    for key, name, fn in (
        ("np_r2", "NumPy: noise only (R2 path)", lambda: numpy_r2("binary", T, N, 0)),
        (
            "np_main",
            "NumPy: main (stream, release, metrics)",
            lambda: numpy_main("binary", T, N, 0),
        ),
    ):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        r = {
            "compile_s": None,
            "run_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0,
        }
        add(key, name, r)
    return rows


# =========================================================================== report
def machine_facts() -> dict:
    return common_facts(
        ROOT,
        "experiments",
        "privacy",
        load_start=os.getloadavg(),
        counters_sha=counters_sha(),
        ram_gib=_mem_gib(),
    )


def _mem_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def counters_sha() -> str:
    """Short hash of the privacy/counters/ package (edited concurrently; recorded at start and
    end): its modules' bytes, in name order."""
    h = hashlib.sha1()
    for path in sorted((ROOT / "privacy" / "counters").glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:10]


def _fmt(x, spec=".3g") -> str:
    return "–" if x is None else format(x, spec)


def pairs_table(rows: list[dict]) -> list[str]:
    lines = [
        "| config | mechanism | T | N | impl | compile s | run s | CPU s | elements/s | "
        "elements per CPU-s | engine / NumPy (wall; CPU) | peak RSS MB (after imports) | "
        "check | load before→after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by = {(r["config"], r["mech"], r["impl"]): r for r in rows}
    for r in rows:
        el = r["N"] * r["T"]
        ratio = "–"
        ref = by.get((r["config"], r["mech"], "numpy"))
        if r["impl"] == "engine" and ref:
            w = (el / r["run_s"]) / (ref["N"] * ref["T"] / ref["run_s"])
            c = (el / r["cpu_s"]) / (ref["N"] * ref["T"] / ref["cpu_s"]) if r["cpu_s"] else None
            ratio = f"**{w:.3f}**; {_fmt(c, '.3f')}"
        ck = r["check"]
        if r["config"] == "main":
            check = (
                f"MSE {ck['mse']:.4g} ± {ck['se']:.2g} vs {ck['oracle']:.4g}: "
                f"{ck['z']:+.1f} SE {'ok' if ck['ok'] else 'FAIL'}"
            )
        else:
            check = (
                f"max dev {100 * ck['max_dev']:.2f}% ≤ {100 * ck['tol']:.2f}% "
                f"{'ok' if ck['ok'] else 'FAIL'}"
            )
        extra = f" (chunk {r['chunk']})" if r.get("chunk") else ""
        extra += f" (unroll {r['unroll']})" if r.get("unroll", 1) != 1 else ""
        extra += f" (batch {r['batch']})" if r.get("batch") else ""
        lines.append(
            f"| {r['config']} | {r['mech']} | 2^{int(math.log2(r['T']))} | {r['N']} | "
            f"{r['impl']}{extra} | {_fmt(r['compile_s'], '.1f')} | {r['run_s']:.1f} | "
            f"{_fmt(r['cpu_s'], '.1f')} | **{el / r['run_s']:.3g}** | "
            f"{_fmt(el / r['cpu_s'] if r['cpu_s'] else None)} | {ratio} | "
            f"{r['rss_peak_mb']:.0f} ({r['rss_base_mb']:.0f}) | {check} | "
            f"{r['load_before']:.1f}→{r['load_after']:.1f} |"
        )
    return lines


def target_line(rows: list[dict]) -> str:
    """Issue 4's target, engine >= 5x NumPy elements/s, against the measured wall ratios."""
    by = {(r["config"], r["mech"], r["impl"]): r for r in rows if r["impl"] == "numpy"}
    ratios = {
        f"{r['config']} {r['mech']}"
        + (f" (unroll {r['unroll']})" if r.get("unroll", 1) != 1 else ""): (
            r["N"] * r["T"] / r["run_s"]
        )
        / (o["N"] * o["T"] / o["run_s"])
        for r in rows
        if r["impl"] == "engine" and (o := by.get((r["config"], r["mech"], "numpy")))
    }
    if not ratios:
        return "No engine/NumPy pair ran."
    met = [k for k, v in ratios.items() if v >= 5]
    lo, hi = min(ratios, key=ratios.get), max(ratios, key=ratios.get)
    return (
        f"Target engine/NumPy ≥ 5 (issue 4): met in {len(met)} of {len(ratios)} rows"
        f"{' (' + ', '.join(met) + ')' if met else ''}; wall ratios from {ratios[lo]:.3f} "
        f"({lo}) to {ratios[hi]:.3f} ({hi})."
    )


def profile_table(rows: list[dict], T: int, N: int) -> list[str]:
    lines = [
        f"### Profile: binary counter, T = 2^{int(math.log2(T))}, N = {N} (one process)",
        "",
        "| variant | compile s | run s | CPU s | elements/s | elements per CPU-s | "
        "CPU ns per element | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cpu = r["cpu_s"]
        lines.append(
            f"| {r['variant']} | {_fmt(r['compile_s'], '.1f')} | {r['run_s']:.2f} | "
            f"{_fmt(cpu, '.2f')} | **{N * T / r['run_s']:.3g}** | "
            f"{_fmt(N * T / cpu if cpu else None)} | {_fmt(1e9 * cpu / (N * T) if cpu else None)} "
            f"| {r['load']:.1f} |"
        )
    ns = {r["id"]: 1e9 * r["cpu_s"] / (N * T) for r in rows if r["cpu_s"]}
    need = {"sim", "sim_exact", "act_update", "advance_once", "advance_bulk", "rng_step"}
    if need <= ns.keys() and {"rng_bulk", "np_main", "np_r2"} <= ns.keys():
        lines += [
            "",
            "CPU nanoseconds per element (= per stream-step), from the rows above: the full "
            f"engine {ns['sim']:.0f}; the engine with a noise-free counter {ns['sim_exact']:.0f} "
            "(stream draw, release error, Kahan-summed metrics, grid), so the counter costs "
            f"≈ {ns['sim'] - ns['sim_exact']:.0f}. The counter alone (act + update, as "
            f"`noise_streams(agent=True)`) {ns['act_update']:.0f}, of which "
            f"{ns['act_update'] - ns.get('no_draws', float('nan')):.0f} go to its two per-step "
            "draws (the same with the draws replaced by (k + t) mod 7 - 3: "
            f"{ns.get('no_draws', float('nan')):.0f}); "
            f"with one advance per step instead of two "
            f"{ns['advance_once']:.0f}; with that step's normal drawn in bulk instead of from "
            f"fold_in(key, t) {ns['advance_bulk']:.0f}. The per-step draw alone (fold_in + one "
            f"normal, inside the scan) {ns['rng_step']:.0f}, against {ns['rng_bulk']:.0f} in bulk. "
            f"The R2 path (`noise_sum_of_squares`) {ns.get('r2_path', float('nan')):.0f}; the "
            f"NumPy algorithm in jax.numpy {ns.get('xla', float('nan')):.0f}. "
            f"NumPy: {ns['np_r2']:.0f} noise only, {ns['np_main']:.0f} for the whole main "
            "computation.",
        ]
    return lines


def sha_notes(rows: list[dict], sha0: str) -> list[str]:
    """Which rows imported another version of privacy/counters/ than the one at the start."""
    if any("counters_sha" not in r for r in rows):
        return ["- The version of privacy/counters/ each row imported was not recorded."]
    other = [r for r in rows if r["counters_sha"] != sha0]
    if not other:
        return [f"- Every row imported privacy/counters/ {sha0}."]
    listed = ", ".join(
        f"{r['config']} {r['mech']} {r['impl']} ({r['counters_sha']})" for r in other
    )
    return [f"- Rows that imported another privacy/counters/ than {sha0}: {listed}."]


def render(raw: dict) -> str:
    """The Markdown report of a run (`raw`: what `main` measured, as saved by --raw)."""
    facts, rows, cov_z = raw["facts"], raw["rows"], raw["cov_z"]
    sha0, sha1 = facts["counters_sha"], facts.get("counters_sha_end", "?")
    changed = "" if sha0 == sha1 else " (CHANGED mid-run)"
    load_end = " ".join(f"{x:.2f}" for x in facts.get("load_end", []))
    text = [
        "# Continual counting: engine vs NumPy (`uv run python bench/privacy.py`)",
        "",
        f"Written by `bench/privacy.py` (`{raw['argv'] or '(no flags)'}`), started "
        f"{facts['date']}.",
        "",
        f"**Machine:** {facts['cpu']}, {facts['cores']} cores, {facts['ram_gib']:.0f} GiB RAM; "
        f"Python {facts['python']}, jax {facts['jax']} ({facts['backend']}: "
        f"{facts.get('device', '?')}, x64 {facts['x64']}), "
        f"numpy {facts['numpy']}; git {facts['git']}; privacy/counters/ sha1 {sha0} at start, "
        f"{sha1} at end{changed}. Load average (1/5/15 min) at start "
        f"{' '.join(f'{x:.2f}' for x in facts['load_start'])}, at end {load_end} (a load "
        f"near or above the {facts['cores']} cores depresses wall rates; the CPU-second rates "
        "are then the steadier measure).",
        "",
        "elements = N streams × T steps; elements/s = elements / run (wall) seconds, compile "
        "excluded and reported apart; CPU s = process CPU seconds of the run (engine main: "
        "extrapolated from the end of the first chunk to the end of the last). Each row is a "
        "fresh subprocess: peak RSS is its VmHWM (not `ru_maxrss`, which Linux carries over "
        "from the parent across fork and exec), in brackets its RSS after imports "
        "(Python + JAX + NumPy), before any work. Checks: main, mean per-stream MSE vs the exact "
        f"mean variance within {MAIN_Z:g} SE; R2, per-step variance within {R2_SE} sqrt(2/N) of "
        "the oracle at every t. The NumPy references' covariance matches B Bᵀ of "
        "`privacy.factorization` at T = 21 (2·10^5 streams; largest deviation in SE, bound 5: "
        + ", ".join(f"{m} {z:.1f}" for m, z in cov_z.items())
        + ").",
        "",
        *pairs_table(rows),
        "",
        *[f"- {n}" for n in raw["notes"]],
        *sha_notes(rows, sha0),
        f"- {target_line(rows)}",
        "",
    ]
    if raw.get("profile"):
        text += [*profile_table(raw["profile"], *raw["profile_size"]), ""]
    return "\n".join(text)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="main 2^14 x 100, R2 2^10 x 2000")
    ap.add_argument("--mechs", default=",".join(MECHS), help="comma list of " + ", ".join(MECHS))
    ap.add_argument("--configs", default="main,r2", help="comma list: main, r2, path")
    ap.add_argument(
        "--sqrt-budget",
        type=float,
        default=300.0,
        help="seconds for the engine's sqrt R2 run; N is cut to fit",
    )
    ap.add_argument(
        "--sqrt-main-streams",
        type=int,
        default=100,
        help="streams of the sqrt counter in the main configuration (memory: T floats each)",
    )
    ap.add_argument(
        "--impls", default="engine,numpy", help="comma list: engine, numpy (both: the ratio)"
    )
    ap.add_argument(
        "--unroll",
        default="1",
        help="comma list of scan unrolls for the engine's main runs (REGRETLAB_SCAN_UNROLL)",
    )
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--out", default=None, help="default bench/privacy_results.md (--quick: none)")
    ap.add_argument("--raw", default=None, help="also save the measurements as JSON (each row)")
    ap.add_argument("--from-raw", default=None, help="only render the report of a --raw file")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(json.loads(a.child)), default=float))
        return
    out = a.out or (None if a.quick else str(ROOT / "bench" / "privacy_results.md"))
    if a.from_raw:
        text = render(json.loads(Path(a.from_raw).read_text()))
        Path(out).write_text(text) if out else print(text)
        return

    if a.quick:
        sizes = {"main": (1 << 14, 100), "r2": (1 << 10, 2000), "path": (1 << 14, 100)}
        prof = (1 << 12, 200)
    else:
        sizes = {"main": (1 << 20, 1000), "r2": (1 << 12, 100_000), "path": (1 << 20, 1000)}
        prof = (1 << 16, 1000)
    facts = machine_facts()
    print(json.dumps(facts), flush=True)
    cov_z = verify_numpy()
    print("NumPy references, max |cov - B B^T| in SE at T = 21: " + json.dumps(cov_z), flush=True)
    raw = {"argv": " ".join(argv), "facts": facts, "cov_z": cov_z, "rows": [], "notes": []}
    raw.update(profile=[], profile_size=list(prof))

    def save() -> None:
        if a.raw:
            Path(a.raw).write_text(json.dumps(raw, default=float, indent=1))

    rows, notes = raw["rows"], raw["notes"]
    for config in a.configs.split(","):
        T, N = sizes[config]
        for mech in a.mechs.split(","):
            n = N
            if mech == "sqrt" and config == "main" and a.sqrt_main_streams < N:
                n = a.sqrt_main_streams
                notes.append(
                    f"sqrt, main: N = {n} streams, not {N}. The engine's sqrt counter holds its "
                    f"whole noise path, T floats per stream (computed at init by a real FFT of "
                    f"length 2T): at N = {N}, T = 2^{int(math.log2(T))} that is "
                    f"{N * T * 4 / 2**30:.0f} GiB of state, and about 28 N T bytes "
                    f"({28 * N * T / 2**30:.0f} GiB) while the vmapped init runs, against "
                    f"{facts['ram_gib']:.0f} GiB of RAM here (`--sqrt-main-streams`)."
                )
            elif mech == "sqrt":
                probe_n = min(N, 200)
                rate = sqrt_probe(T, probe_n)
                n = max(probe_n, min(N, int(a.sqrt_budget * rate / T) // 100 * 100))
                if n < N:
                    notes.append(
                        f"sqrt, {config}: the engine's sqrt counter ran at {rate:.3g} elements/s "
                        f"in a probe ({probe_n} streams), so N = {N} would take "
                        f"{N * T / rate:.0f} s; both implementations ran N = {n} streams "
                        f"(`--sqrt-budget` {a.sqrt_budget:.0f} s), with the R2 tolerance "
                        f"{R2_SE} sqrt(2/N) widened accordingly."
                    )
            jobs = []
            for impl in a.impls.split(","):
                job = {"impl": impl, "config": config, "mech": mech, "T": T, "N": n, "seed": 0}
                if impl == "engine" and config == "main":
                    jobs += [{**job, "unroll": int(u)} for u in a.unroll.split(",")]
                else:
                    jobs.append(job)
            for job in jobs:
                impl = job["impl"]
                r = run_child(job)
                rows.append(r)
                save()
                ck = r["check"]
                print(
                    f"{config:4s} {mech:8s} {impl:6s} T={T} N={n}: compile "
                    f"{_fmt(r['compile_s'], '.1f')} s, run {r['run_s']:.1f} s, CPU "
                    f"{_fmt(r['cpu_s'], '.1f')} s, {n * T / r['run_s']:.3g} el/s, peak RSS "
                    f"{r['rss_peak_mb']:.0f} MB (after imports {r['rss_base_mb']:.0f}), check "
                    f"{'ok' if ck['ok'] else 'CHECK FAILED'} {json.dumps(ck)}, load "
                    f"{r['load_before']:.1f}→{r['load_after']:.1f}",
                    flush=True,
                )
    if not a.no_profile:
        raw["profile"] = profile(*prof)
    facts["load_end"] = os.getloadavg()
    facts["counters_sha_end"] = counters_sha()
    save()
    text = render(raw)
    if out:
        Path(out).write_text(text)
        print(f"wrote {out}")
    else:
        print(text)
    failed = [f"{r['config']}/{r['mech']}/{r['impl']}" for r in rows if not r["check"]["ok"]]
    if failed:
        print("CHECK FAILED: " + ", ".join(failed))


if __name__ == "__main__":
    main()
