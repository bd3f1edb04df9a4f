"""Where the engine's per-step floor goes: a bare ``lax.scan`` against the engine's chunks.

On a trace-driven env (env=paging, Zipf(1.0) over 10^5 pages, cache k = 1000, FIFO and LRU) the
same ``feed/observe/act/step/update`` functions run, in one process:

* ``bare``: one ``jit(lax.scan)`` over the whole trace (the trace an argument, no bookkeeping);
  with seeds > 1 the scan body is ``vmap``-ed over seeds (the inputs are shared);
* ``bare+advance``: the same scan with the engine's per-step bookkeeping (`rollout.advance`:
  exact metric sums, rounds, illegal-action flag), still one program over the whole trace;
* ``engine``: `compile_simulation(...).run()` with the default chunks (host-side chunk loop,
  per-chunk input slicing and transfer, recording at the default 200-point grid);
* ``engine, one chunk``: the engine with ``chunk_size`` = the whole trace (no chunk loop).

Reported: microseconds of process CPU time per step (all threads; the machine is shared, wall
times are inflated) and per lane-step, compile excluded (every program runs once to warm up
first), the ratio engine / bare, and a check that every variant counts the same faults.

    uv run python bench/engine_floor.py                       # 10^6 requests, 1 and 64 lanes
    uv run python bench/engine_floor.py --length 200000 --lanes 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


def cpu_seconds(fn, repeat: int = 2) -> tuple[float, object]:
    """Least process CPU seconds of `repeat` calls of `fn` (after a warm-up call)."""
    import jax

    out = jax.block_until_ready(fn())
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        out = jax.block_until_ready(fn())
        best = min(best, time.process_time() - t)
    return best, out


def bare_programs(env, agent, inputs: dict, seeds: int):
    """``bare`` and ``bare+advance``: jitted functions of (initial carry, inputs).

    The carry is made by a separate ``vmap``-ed init (as the engine's is), so every leaf has a
    seed axis: a scan whose init were traced into the same program would keep the leaves that do
    not depend on the key unbatched (one lane's work for all lanes of a deterministic agent).
    With one seed the scan is unbatched (the axis squeezed): the floor of a single run.
    """
    import jax

    from experiments.rollout import advance, initial_carry, probe, step, step_inputs

    params = ()
    p = probe(env, params, agent, len(next(iter(inputs.values())).data), step_inputs(inputs))
    xs = {k: jax.numpy.asarray(np.asarray(x.data)) for k, x in inputs.items()}

    def bare_one(c, xs):
        def body(c, x):
            _, e, a = step(env, params, agent, *c, {}, {}, x)
            return (e, a), None

        return jax.lax.scan(body, (c.env_state, c.agent_state), xs)[0][0].faults

    def advance_one(c, xs):
        def body(c, x):
            return advance(env, params, agent, c, {}, {}, x, None, False)[0], None

        return jax.lax.scan(body, c, xs)[0].sums["faults"]

    def batched(one):
        if seeds == 1:  # no seed axis at all: the unbatched program
            return jax.jit(lambda c, xs: one(jax.tree.map(lambda x: x[0], c), xs)[None])
        return jax.jit(jax.vmap(one, in_axes=(0, None)))

    init = jax.jit(jax.vmap(lambda k: initial_carry(env, params, agent, p, k)[0]))
    return init, {"bare": batched(bare_one), "bare+advance": batched(advance_one)}, xs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=1_000_000)
    ap.add_argument("--pages", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--lanes", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--agents", nargs="+", default=["fifo", "lru"])
    args = ap.parse_args()

    import jax

    from experiments.simulate import compile_simulation, host_inputs
    from paging.classic import FIFO, LRU
    from paging.env import Paging

    L = args.length
    env = Paging(trace="zipf", length=L, pages=args.pages, alpha=1.0, cache_size=args.k)
    agents = {"fifo": FIFO(), "lru": LRU()}
    print(
        f"paging zipf(1.0), {L} requests, {args.pages} pages, k = {args.k}; jax {jax.__version__}"
    )
    print("| agent | lanes | variant | CPU s | µs/step | µs/lane-step | × bare | faults |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.agents:
        agent = agents[name]
        for seeds in args.lanes:
            inputs = host_inputs(env, (), L, seeds)
            keys = jax.random.split(jax.random.key(0), seeds)
            init, programs, xs = bare_programs(env, agent, inputs, seeds)
            rows = {
                v: cpu_seconds(lambda f=f, i=init, k=keys, x=xs: f(i(k), x))
                for v, f in programs.items()
            }
            for label, chunk in (("engine", None), ("engine, one chunk", L)):
                compiled = compile_simulation(env, (), agent, L, seeds, chunk_size=chunk)
                rows[label] = cpu_seconds(lambda c=compiled: c.run().final["faults"], repeat=1)
            base = rows["bare"][0]
            for v, (cpu, faults) in rows.items():
                f = sorted({int(x) for x in np.asarray(faults).ravel()})
                print(
                    f"| {name} | {seeds} | {v} | {cpu:.2f} | {1e6 * cpu / L:.3f} |"
                    f" {1e6 * cpu / L / seeds:.3f} | {cpu / base:.2f} | {f} |"
                )


if __name__ == "__main__":
    main()
