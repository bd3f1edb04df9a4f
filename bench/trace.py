"""Trace-driven environments: compile time and peak memory against the trace's length.

The engine streams exogenous inputs chunk by chunk (issue: "compile time and memory must not
grow with the input's length"). For each length T (default 10^5, 10^6, 10^7) a fresh subprocess

1. writes a Zipf(1) trace over 1024 pages to a ``.npy`` file, in chunks (NumPy, seeded),
2. runs the one-slot cache example (`examples/trace_cache.py`: Belady's rule, 4 seeds, the file
   read by `experiments.inputs.NpyRows`, next arrivals by the streamed backward pass), and
3. reports the engine's compile seconds, its run seconds (the chunk loop), the
   preparation pass alone, and the process's peak resident memory (``ru_maxrss``) measured before
   the trace is touched and at the end;

then a plain Python loop over the same trace (the reference, in the same subprocess) gives the
speed ratio and checks the faults. Usage::

    uv run python bench/trace.py           # 1e5, 1e6, 1e7; appends to bench/trace_results.md
    uv run python bench/trace.py --lengths 100000 --no-write
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples"), str(ROOT / "bench")]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_zipf(path: Path, length: int, pages: int = 1024, seed: int = 0) -> None:
    import numpy as np

    from experiments.inputs import NpyWriter

    step = 1 << 16
    p = np.arange(1, pages + 1, dtype=np.float64) ** -1.0
    p /= p.sum()
    rng = np.random.default_rng(seed)
    with NpyWriter(path, (length,), np.int32) as out:
        for a in range(0, length, step):
            n = min(step, length - a)
            out.write(a, rng.choice(pages, size=n, p=p).astype(np.int32))


def python_belady(path: Path, next_path: Path) -> tuple[int, float]:
    """Faults of Belady's one-slot rule in a plain Python loop over the file's rows."""
    from experiments.inputs import CHUNK_ROWS, NpyRows

    rows, nxt = NpyRows(path), NpyRows(next_path)
    t0 = time.perf_counter()
    cached, cached_next, faults = -1, 0, 0
    for a in range(0, len(rows), CHUNK_ROWS):
        pages, nexts = rows[a : a + CHUNK_ROWS].tolist(), nxt[a : a + CHUNK_ROWS].tolist()
        for page, nx in zip(pages, nexts, strict=True):
            if page == cached:
                cached_next = nx
            else:
                faults += 1
                if cached < 0 or nx < cached_next:
                    cached, cached_next = page, nx
    return faults, time.perf_counter() - t0


def one(length: int, seeds: int) -> dict:
    """Measure one length in this process (run by `main` in a fresh subprocess)."""
    import jax
    from trace_cache import Belady, TraceCache

    from experiments.simulate import host_inputs, simulate

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "trace.npy"
        write_zipf(path, length)
        jax.numpy.zeros(1).block_until_ready()  # the runtime is up before the baseline
        base = peak_mb()
        env = TraceCache(trace=str(path), length=length)
        t0 = time.perf_counter()
        prepared = host_inputs(env, (), length, seeds)
        prep = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = simulate(env, (), Belady(), length, seeds, grid=[length])
        wall = time.perf_counter() - t0
        faults, py_seconds = python_belady(path, prepared["request_next"].data.path)
    return {
        "length": length,
        "seeds": seeds,
        "chunk": res.info["chunk_size"],
        "compile_s": round(res.compile_seconds, 2),
        "run_s": round(res.run_seconds, 2),
        "prepare_s": round(prep, 2),
        "wall_s": round(wall, 2),
        "rss_before_mb": round(base, 1),
        "rss_peak_mb": round(peak_mb(), 1),
        "python_s": round(py_seconds, 2),
        "faults_equal": bool(res.final["faults"][0] == faults),
        "steps_per_s": length * seeds / res.run_seconds,
        "python_steps_per_s": length / py_seconds,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="100000,1000000,10000000")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.seeds)))
        return 0
    from _common import machine_facts

    rows = []
    for length in map(int, args.lengths.split(",")):
        cmd = [sys.executable, __file__, "--one", str(length), "--seeds", str(args.seeds)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    head = (
        "| T | chunk | compile s | run s | prepare s | RSS before MB "
        "| peak RSS MB | engine steps/s (x seeds) | ratio to Python loop | faults equal |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        ratio = r["steps_per_s"] / r["python_steps_per_s"]
        lines.append(
            f"| {r['length']:.0e} | {r['chunk']} | {r['compile_s']} | {r['run_s']} | "
            f"{r['prepare_s']} | {r['rss_before_mb']} | {r['rss_peak_mb']} | "
            f"{r['steps_per_s']:.3g} | {ratio:.2f}x | {r['faults_equal']} |"
        )
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        facts = machine_facts(ROOT, "experiments", "examples/trace_cache.py")
        text = f"\n## {facts['date']}\n\n```\n{json.dumps(facts)}\n```\n\n{table}\n"
        with open(ROOT / "bench" / "trace_results.md", "a") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
