"""What stands between the engine's UCB1 and a Numba loop on the CPU: the layout of the lanes.

The engine runs an agent written for one lane (gymnax style) under ``vmap`` over seeds, so every
per-arm array is (seeds, K): K = 10 arms on the minor axis, and the step's argmax reduces short
rows (the pulled arm's statistics are written by a one-entry scatter per lane,
`bandits.agents.stats.write_arm`). The same algorithm written by hand for all lanes at once with
the lanes on the minor axis, (K, seeds), reduces over the major axis in full vector registers. Three
variants, one process, one JAX device (``REGRETLAB_HOST_DEVICES=1``: no seed split), K = 10
Bernoulli arms (means linspace(0.1, 0.9, 10)):

* ``engine``: `experiments.simulate.simulate` with `bandits.agents.ucb.UCB1` (draws, exact
  metric sums, Kahan reward sums, 200-point recording);
* ``vmap, seeds major``: one ``jit(lax.scan)`` of ``vmap`` over seeds of the same agent's
  ``act`` / ``update`` and a Bernoulli reward (one uniform per lane and step), no bookkeeping;
* ``hand-written, lanes minor``: the UCB1 step on (K, seeds) arrays (index, lowest-index ties,
  1[u < mu], plain float32 sums: no Kahan), one ``jit(lax.scan)``.

Reported: process CPU nanoseconds per lane-step (all threads; least of `--repeat` calls after a
warm-up, compile excluded), wall seconds, the ratio of CPU per lane-step to the engine's, and the
mean final pseudo-regret ± SE (each variant its own random streams: agreement within a few SE).

    uv run python bench/ucb1_layout.py                  # T = 10^5, 1000 seeds
    uv run python bench/ucb1_layout.py --horizon 20000
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("REGRETLAB_HOST_DEVICES", "1")  # before JAX starts: one device, no split
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from bandits import bernoulli_bandit  # noqa: E402
from bandits.agents.ucb import UCB1  # noqa: E402
from experiments.simulate import simulate  # noqa: E402

K = 10


def cpu_now() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(fn, repeat: int) -> tuple[float, float, np.ndarray]:
    """Least CPU seconds and wall seconds of `repeat` calls after a warm-up; the last output."""
    out = jax.block_until_ready(fn())
    best_cpu = best_wall = float("inf")
    for _ in range(repeat):
        c0, w0 = cpu_now(), time.perf_counter()
        out = jax.block_until_ready(fn())
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, cpu_now() - c0)
    return best_cpu, best_wall, np.asarray(out, np.float64)


def engine(horizon: int, seeds: int):
    env = bernoulli_bandit(K)
    params = env.default_params()

    def run():
        res = simulate(env, params, UCB1(), horizon, seeds, seed=0, progress=False)
        return res.final["regret"]

    return run


def vmap_seeds_major(horizon: int, seeds: int):
    env = bernoulli_bandit(K)
    params = env.default_params()
    agent = UCB1()
    spec = env.spec(params, horizon)

    def lane(state, t, u):
        arm = agent.act({}, state, t)
        reward = (u < params.means[arm]).astype(params.means.dtype)
        return agent.update(state, t, arm, reward), params.gaps[arm]

    @jax.jit
    def run(key):
        states = jax.vmap(lambda k: agent.init(k, spec))(jax.random.split(key, seeds))

        def body(carry, t):
            states, regret = carry
            u = jax.random.uniform(jax.random.fold_in(key, t), (seeds,))
            states, gap = jax.vmap(lane, in_axes=(0, None, 0))(states, t, u)
            return (states, regret + gap), None

        init = (states, jnp.zeros(seeds, params.means.dtype))
        return jax.lax.scan(body, init, jnp.arange(horizon))[0][1]

    return lambda: run(jax.random.key(1))


def lanes_minor(horizon: int, seeds: int, c: float = 2.0):
    means = jnp.asarray(np.linspace(0.1, 0.9, K), jnp.float32)
    gaps = means.max() - means

    @jax.jit
    def run(key):
        def body(carry, t):
            counts, sums, inv_sqrt_n, regret = carry
            u = jax.random.uniform(jax.random.fold_in(key, t), (seeds,))
            width = jnp.sqrt(c * jnp.log(jnp.maximum(t, 1).astype(jnp.float32)))
            mean = sums / jnp.maximum(counts, 1)
            index = jnp.where(counts == 0, jnp.inf, mean + width * inv_sqrt_n)
            arm = jnp.argmax(index, axis=0)  # (seeds,): lowest index on ties, as UCB1
            hot = jnp.arange(K)[:, None] == arm[None, :]
            reward = (u < means[arm]).astype(jnp.float32)
            counts = counts + hot
            sums = sums + jnp.where(hot, reward[None, :], 0.0)
            fresh = jax.lax.rsqrt(jnp.maximum(counts, 1).astype(jnp.float32))
            inv_sqrt_n = jnp.where(hot, fresh, inv_sqrt_n)
            return (counts, sums, inv_sqrt_n, regret + gaps[arm]), None

        zeros = jnp.zeros((K, seeds), jnp.float32)
        init = (jnp.zeros((K, seeds), jnp.int32), zeros, zeros, jnp.zeros(seeds, jnp.float32))
        return jax.lax.scan(body, init, jnp.arange(horizon))[0][3]

    return lambda: run(jax.random.key(2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--horizon", type=int, default=100_000)
    ap.add_argument("--seeds", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    steps = a.horizon * a.seeds
    print(f"UCB1, K = {K}, T = {a.horizon}, {a.seeds} seeds; jax {jax.__version__}, "
          f"{len(jax.devices())} device(s), load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print("| variant | CPU ns / lane-step | wall s | CPU / engine's | final regret ± SE |")
    print("|---|---|---|---|---|")
    variants = {
        "engine": engine,
        "vmap, seeds major": vmap_seeds_major,
        "hand-written, lanes minor": lanes_minor,
    }
    base = None
    for name, make in variants.items():
        cpu, wall, final = measure(make(a.horizon, a.seeds), a.repeat)
        per = cpu / steps * 1e9
        base = base or per
        se = final.std(ddof=1) / np.sqrt(final.size)
        print(f"| {name} | {per:.1f} | {wall:.2f} | {per / base:.2f} | "
              f"{final.mean():.1f} ± {se:.1f} |", flush=True)  # fmt: skip
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
