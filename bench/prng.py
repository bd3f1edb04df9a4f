"""Nanoseconds per sample: `experiments.prng` against `jax.random` and NumPy (issue 9, part 4).

    uv run python bench/prng.py             # N = 1000 keys x T = 4096 samples each
    uv run python bench/prng.py --quick     # N = 100

Each JAX variant is one jitted program, vmapped over N keys, drawing T float32 samples per key
and reducing them to one number per key (the sum of squares, fused into the draw), so the
samples are computed but never stored; NumPy draws the same (N, T) float32 array from PCG64
(`standard_normal`, `random`, `standard_exponential`; Laplace: ±`standard_exponential`, as
NumPy's own `laplace` has no float32 form) and reduces it the same way. Compile time is
excluded; each variant runs `--repeat` times and the fastest run is kept (wall and process-CPU
seconds separately: the machine is shared, so the CPU figure is the steadier one, and XLA may
use several cores where NumPy uses one). Ratios are measured in this run only.

"prng-split" is `experiments.prng` with Philox's high products from `prng.mulhi_split` (uint32
arithmetic on 16-bit halves, the same bits), as the engine's per-device programs draw them
(``lax.mulhi`` does not lower inside `jax.shard_map`).

"box-muller" is the alternative normal transform (Box & Muller, Ann. Math. Stat. 29(2), 1958:
two normals from the same Philox words as `prng.normal`), kept here to show why
`experiments.prng` inverts erf instead.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from experiments import prng  # noqa: E402


def box_muller(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """Two normals r cos θ, r sin θ per pair of words: r = sqrt(-2 log U1), U1 in (0, 1],
    θ = 2π U2 (Box & Muller 1958), on `prng.bits`."""
    n = math.prod(shape)
    w = prng.bits(key, 2 * (-(-n // 2))).reshape(-1, 2)
    u1 = 1.0 - (w[:, 0] >> 8).astype(jnp.float32) * np.float32(2.0**-24)
    theta = (w[:, 1] >> 8).astype(jnp.float32) * np.float32(2 * math.pi * 2.0**-24)
    r = jnp.sqrt(-2.0 * jnp.log(u1))
    z = jnp.stack([r * jnp.cos(theta), r * jnp.sin(theta)], -1).reshape(-1)
    return z[:n].reshape(shape).astype(dtype)


def split_mulhi(sample: Callable) -> Callable:
    """`sample` traced with `prng.mulhi_split` (16-bit halves) for Philox's high products: the
    path `experiments.prng` takes inside `jax.shard_map`, where ``lax.mulhi`` does not lower."""

    def draw(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        saved, prng.mulhi = prng.mulhi, prng.mulhi_split
        try:
            return sample(key, shape, dtype)
        finally:
            prng.mulhi = saved

    return draw


Sampler = Callable[[jax.Array, tuple[int, ...]], jax.Array]

JAX_VARIANTS: dict[str, dict[str, Sampler]] = {
    "uniform": {
        "jax.random": jax.random.uniform,
        "prng": prng.uniform,
        "prng-split": split_mulhi(prng.uniform),
    },
    "normal": {
        "jax.random": jax.random.normal,
        "prng": prng.normal,
        "prng-split": split_mulhi(prng.normal),
        "box-muller": box_muller,
    },
    "exponential": {"jax.random": jax.random.exponential, "prng": prng.exponential},
    "laplace": {"jax.random": jax.random.laplace, "prng": prng.laplace},
}


def numpy_sampler(kind: str) -> Callable[[np.random.Generator, tuple[int, int]], np.ndarray]:
    f32 = np.float32
    return {
        "uniform": lambda g, s: g.random(s, dtype=f32),
        "normal": lambda g, s: g.standard_normal(s, dtype=f32),
        "exponential": lambda g, s: g.standard_exponential(s, dtype=f32),
        "laplace": lambda g, s: (
            np.where(g.random(s, dtype=f32) < 0.5, f32(-1), f32(1))
            * g.standard_exponential(s, dtype=f32)
        ),
    }[kind]


def best_of(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(fastest wall seconds, fewest CPU seconds) over `repeat` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


def measure(N: int, T: int, repeat: int) -> list[dict]:
    keys = jax.random.split(jax.random.key(0), N)
    rows = []
    for kind, variants in JAX_VARIANTS.items():
        for name, sample in variants.items():
            draws = jax.vmap(lambda k, s=sample: s(k, (T,)))
            f = jax.jit(lambda k, draws=draws: jnp.sum(jnp.square(draws(k)), 1))
            jax.block_until_ready(f(keys))  # compile and warm up
            wall, cpu = best_of(lambda f=f: jax.block_until_ready(f(keys)), repeat)
            rows.append({"kind": kind, "impl": name, "wall": wall, "cpu": cpu})
            _print(rows[-1], N * T)
        g = np.random.default_rng(0)
        draw = numpy_sampler(kind)
        wall, cpu = best_of(lambda g=g, draw=draw: np.square(draw(g, (N, T))).sum(1), repeat)
        rows.append({"kind": kind, "impl": "numpy", "wall": wall, "cpu": cpu})
        _print(rows[-1], N * T)
    return rows


def _print(r: dict, n: int) -> None:
    print(
        f"  {r['kind']:12s} {r['impl']:11s} wall {1e9 * r['wall'] / n:6.2f} ns/sample, "
        f"CPU {1e9 * r['cpu'] / n:6.2f} ns/sample",
        flush=True,
    )


def table(rows: list[dict], n: int) -> list[str]:
    """Markdown: ns per sample and speed ratios (prng's speed / other's: > 1 means prng is
    faster), wall; CPU."""
    by = {(r["kind"], r["impl"]): r for r in rows}
    out = [
        "| samples | impl | wall ns/sample | CPU ns/sample | prng speed / this (wall; CPU) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        p = by[(r["kind"], "prng")]
        ratio = f"{r['wall'] / p['wall']:.2f}; {r['cpu'] / p['cpu']:.2f}"
        out.append(
            f"| {r['kind']} | {r['impl']} | {1e9 * r['wall'] / n:.2f} | "
            f"{1e9 * r['cpu'] / n:.2f} | {'–' if r['impl'] == 'prng' else ratio} |"
        )
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N = 100 keys")
    ap.add_argument("--keys", type=int, default=1000, help="N: keys (vmapped)")
    ap.add_argument("--samples", type=int, default=4096, help="T: float32 samples per key")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args(argv)
    N, T = (100 if a.quick else a.keys), a.samples
    print(
        f"jax {jax.__version__} ({jax.default_backend()}), numpy {np.__version__}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; N = {N} keys x T = {T} float32",
        flush=True,
    )
    rows = measure(N, T, a.repeat)
    print(f"load at end {os.getloadavg()[0]:.2f}")
    print("\n".join(table(rows, N * T)))


if __name__ == "__main__":
    main()
