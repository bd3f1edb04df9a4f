"""Paging (env=paging) against libCacheSim on one Zipf trace: requests per second and memory.

The issue's setting: a Zipf(1.0) trace of 10^7 requests over 10^5 pages, cache size k = 1000.
In one process:

1. the trace is generated (`paging.traces`, streamed to a scratch file) and the env's host passes
   run (dense ids, next arrivals, Belady's OPT; shared by every agent); Belady's offline OPT
   (`paging.opt.belady_faults`, one compiled scan over the requests given their next arrivals,
   as libCacheSim's Belady reads them from the trace) is timed again alone;
2. the same trace is written in libCacheSim's oracleGeneral format and replayed by libCacheSim's
   ``process_trace`` (C++) with Belady and LRU (integer cache size, unit objects);
3. our Belady agent runs through the engine (one seed; replaying the host pass's slots, and
   computing them itself with ``replay=False``), then a sweep of 64 (algorithm, p, seed)
   configurations: {LRU, Marker} x discard-bit flip probability p in {0, 0.2} x 16 seeds (the
   seeds vmapped in one program per (algorithm, p); LRU and Marker ignore the bits, p changes
   the eta counts the env computes);
4. fault counts are checked equal (Belady = libCacheSim's Belady = the env's OPT; LRU =
   libCacheSim's LRU) and the process's peak resident memory is reported.

Rates are requests per second of run time (compile and host passes reported apart) and per CPU
second (process CPU time, all threads); ratios to libCacheSim are taken within the same run.
libcachesim is a benchmark-only dependency (GPL-3.0), imported here only. The process is pinned
to one core unless ``--no-pin`` (libCacheSim is single-threaded; XLA's idle thread-pool workers
otherwise spin on the other cores, which roughly doubled our CPU seconds on a 2-core machine).

    uv run python bench/paging.py                       # 10^7 requests; appends the results
    uv run python bench/paging.py --length 1000000 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Clock:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def write_oracle_general(path: Path, pages, next_arrival, ids, chunk: int = 1 << 20) -> None:
    from paging.traces import ORACLE_GENERAL

    L = len(pages)
    with open(path, "wb") as f:
        for a in range(0, L, chunk):
            x = np.asarray(pages[a : a + chunk])
            nx = np.asarray(next_arrival[a : a + chunk]).astype(np.int64)
            rec = np.zeros(x.size, ORACLE_GENERAL)
            rec["ts"] = np.arange(a, a + x.size, dtype=np.uint32)
            rec["id"] = ids[x].astype(np.uint64)
            rec["size"] = 1
            rec["next"] = np.where(nx >= L, np.iinfo(np.int64).max, nx + 1)
            rec.tofile(f)


def libcachesim_run(path: Path, name: str, k: int, length: int) -> dict:
    import libcachesim as lcs

    params = lcs.ReaderInitParam()
    params.ignore_obj_size = True
    reader = lcs.TraceReader(
        trace=str(path), trace_type=lcs.TraceType.ORACLE_GENERAL_TRACE, reader_init_params=params
    )
    cache = {"belady": lcs.Belady, "lru": lcs.LRU}[name](int(k))
    with Clock() as c:
        miss_ratio, _ = cache.process_trace(reader)
    return {"faults": round(miss_ratio * length), "wall": c.wall, "cpu": c.cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--length", type=int, default=10_000_000)
    ap.add_argument("--pages", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the process to one core (XLA's idle pool threads then spin on the others"
        " and count as CPU time)",
    )
    args = ap.parse_args()
    if not args.no_pin:  # before jax starts its threads
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    from _common import machine_facts

    from experiments.simulate import compile_simulation
    from paging.classic import LRU, Belady, Marker
    from paging.env import Paging
    from paging.opt import belady_faults
    from paging.traces import load

    L, k = args.length, args.k
    rows = {}
    rss0 = peak_mb()
    kw = dict(trace="zipf", length=L, pages=args.pages, alpha=1.0, cache_size=k)
    with Clock() as c_trace:
        env = Paging(**kw)
    with Clock() as c_host:
        host = env.host(L)
    rows["trace generation (host)"] = c_trace
    rows["host passes: next arrivals + Belady OPT"] = c_host
    tr = load("zipf", length=L, pages=args.pages, alpha=1.0, cache_size=k)
    opt = int(np.asarray(host["opt_fault"].data, np.int64).sum())
    n = env.spec((), L).pages
    with Clock() as c_opt:  # compiled already by the env's host pass (same shapes)
        f_opt = belady_faults(host["page"].data, host["next_arrival"].data, k, n)
    opt_again = int(f_opt.sum(dtype=np.int64))

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "zipf.oracleGeneral.bin"
        write_oracle_general(path, host["page"].data, host["next_arrival"].data, tr.ids)
        lcs_belady = libcachesim_run(path, "belady", k, L)
        lcs_lru = libcachesim_run(path, "lru", k, L)

    compiled = compile_simulation(env, (), Belady(), L, 1, grid=[L])
    with Clock() as c_bel:
        r_bel = compiled.run()
    bel_faults = int(r_bel.final["faults"][0])
    compiled = compile_simulation(env, (), Belady(replay=False), L, 1, grid=[L])
    with Clock() as c_bel2:
        r_bel2 = compiled.run()
    bel2_faults = int(r_bel2.final["faults"][0])

    # the sweep: each (algorithm, p) one program (an env with exogenous inputs compiles alone),
    # its seeds vmapped; CPU time of the runs only (compiles timed apart)
    envs = {p: Paging(**kw, predictions="discard", flip_p=p) for p in (0.0, 0.2)}
    sweep, sweep_compile, cpu = {"lru": [], "marker": []}, 0.0, 0.0
    for name, agent in (("lru", LRU()), ("marker", Marker())):
        for p in envs:
            prog = compile_simulation(envs[p], (), agent, L, args.seeds, grid=[L])
            with Clock() as c:
                sweep[name].append(prog.run())
            sweep_compile += sweep[name][-1].compile_seconds
            cpu += c.cpu
    c_sweep = argparse.Namespace(cpu=cpu)
    sweep_run = sum(r.run_seconds for rs in sweep.values() for r in rs)
    configs = sum(len(rs) for rs in sweep.values()) * args.seeds
    lru_faults = {int(f) for r in sweep["lru"] for f in r.final["faults"]}

    belady_all = (bel_faults, bel2_faults, lcs_belady["faults"], opt, opt_again)
    ok = {
        "belady (replay) == belady (computed) == libCacheSim Belady == env OPT == offline OPT": (
            len(set(belady_all)) == 1
        ),
        "LRU (every config) == libCacheSim LRU": lru_faults == {lcs_lru["faults"]},
    }
    bel_rate = L / r_bel.run_seconds
    sweep_rate = configs * L / sweep_run
    lines = [
        "| what | wall s | CPU s | requests/s (wall) | requests/CPU-s | ratio to libCacheSim |",
        "|---|---|---|---|---|---|",
        f"| host: generate trace | {c_trace.wall:.2f} | {c_trace.cpu:.2f} | | | |",
        f"| host: next arrivals + Belady OPT | {c_host.wall:.2f} | {c_host.cpu:.2f} | | | |",
        f"| libCacheSim Belady (process_trace) | {lcs_belady['wall']:.2f} | {lcs_belady['cpu']:.2f}"
        f" | {L / lcs_belady['wall']:.3g} | {L / lcs_belady['cpu']:.3g} | 1 |",
        f"| libCacheSim LRU (process_trace) | {lcs_lru['wall']:.2f} | {lcs_lru['cpu']:.2f}"
        f" | {L / lcs_lru['wall']:.3g} | {L / lcs_lru['cpu']:.3g} | 1 |",
        f"| regretlab Belady offline OPT (paging.opt.belady_faults) | {c_opt.wall:.2f} |"
        f" {c_opt.cpu:.2f} | {L / c_opt.wall:.3g} | {L / c_opt.cpu:.3g} |"
        f" wall {lcs_belady['wall'] / c_opt.wall:.2f}x, CPU {lcs_belady['cpu'] / c_opt.cpu:.2f}x |",
        f"| regretlab belady agent, replay, 1 seed (run; compile {r_bel.compile_seconds:.1f} s) |"
        f" {r_bel.run_seconds:.2f} | {c_bel.cpu:.2f} | {bel_rate:.3g} |"
        f" {L / c_bel.cpu:.3g} | wall {bel_rate / (L / lcs_belady['wall']):.2f}x,"
        f" CPU {(L / c_bel.cpu) / (L / lcs_belady['cpu']):.2f}x |",
        f"| regretlab belady agent, replay, + the host OPT pass above | |"
        f" {c_bel.cpu + c_opt.cpu:.2f} | | {L / (c_bel.cpu + c_opt.cpu):.3g} |"
        f" CPU {(L / (c_bel.cpu + c_opt.cpu)) / (L / lcs_belady['cpu']):.2f}x |",
        f"| regretlab belady agent, computed (replay=False), 1 seed (run; compile"
        f" {r_bel2.compile_seconds:.1f} s) | {r_bel2.run_seconds:.2f} | {c_bel2.cpu:.2f} |"
        f" {L / r_bel2.run_seconds:.3g} | {L / c_bel2.cpu:.3g} |"
        f" wall {(L / r_bel2.run_seconds) / (L / lcs_belady['wall']):.2f}x,"
        f" CPU {(L / c_bel2.cpu) / (L / lcs_belady['cpu']):.2f}x |",
        f"| regretlab sweep, {configs} configs (run; compile {sweep_compile:.1f} s) |"
        f" {sweep_run:.2f} | {c_sweep.cpu:.2f} | {sweep_rate:.3g} |"
        f" {configs * L / c_sweep.cpu:.3g} | wall {sweep_rate / (L / lcs_lru['wall']):.2f}x vs LRU,"
        f" CPU {(configs * L / c_sweep.cpu) / (L / lcs_lru['cpu']):.2f}x |",
    ]
    facts = machine_facts(ROOT, "paging", "bench/paging.py", length=L, pages=args.pages, k=k)
    report = "\n".join(
        [
            f"## {facts['date']}",
            "",
            "```",
            json.dumps(facts),
            "```",
            "",
            *lines,
            "",
            f"Pinned to one core: {not args.no_pin}. Load average at the end:"
            f" {' '.join(f'{x:.1f}' for x in os.getloadavg())}.",
            f"Faults: OPT {opt}, belady agent {bel_faults} (computed: {bel2_faults}),"
            f" libCacheSim Belady"
            f" {lcs_belady['faults']}; LRU {sorted(lru_faults)}, libCacheSim LRU"
            f" {lcs_lru['faults']}. Checks: {ok}.",
            f"Peak RSS: {peak_mb():.0f} MB (before the trace: {rss0:.0f} MB).",
            "",
        ]
    )
    print(report)
    if not args.no_write:
        out = ROOT / "bench" / "paging_results.md"
        if not out.exists():
            out.write_text(
                "# Paging: regretlab vs libCacheSim\n\nWritten by `bench/paging.py`. Each"
                " section is one run.\n\n"
            )
        with open(out, "a") as f:
            f.write(report + "\n")
    if not all(ok.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
