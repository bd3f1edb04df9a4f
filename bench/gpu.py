"""Benchmark: the engine on an accelerator — agent-steps/s against the seed count N.

Sections (``--sections``, default all; each measurement is one subprocess, and each has a CPU
reference: the same engine on the same machine's CPU backend, measured in the same run in a
subprocess with JAX_PLATFORMS=cpu, at a reduced size; rates are per agent-step (per request, per
pull), so the printed ratio is GPU / CPU on one machine at different sizes):

* ``bandits``: UCB1 and Thompson sampling on the 10-armed Bernoulli bandit (means
  linspace(0.1, 0.9, 10)), as in bench/bandits.py, and the binary tree counter (research noise)
  on a Bernoulli(1/2) bit stream, for growing N: the seed axis is one `vmap`, so an accelerator
  pays off once N fills it. UCB1 is also measured with the scan body unrolled (`--unroll`,
  REGRETLAB_SCAN_UNROLL: fewer loop iterations of small kernels, the lever on a GPU) and as an
  in-program sweep of 8 values of its `c` (`simulate_sweep`: configs x seeds lanes). A warm-up
  (compile) call is excluded by the engine's own compile/run split. Default N = 10^3, 10^5
  (T = 10^5; Thompson sampling 10^4, the counter 4096); CPU: N = 10^3 at T / 10.
* ``paging``: env=paging on a Zipf(1.0) trace (10^6 requests over 10^5 pages, k = 1000), LRU
  and Marker x discard-bit flip probability p (default 0.2) x N = 64, 256 seeds (one program
  per (algorithm, p, N), seeds vmapped; as in bench/paging.py); requests/s = N x L / run
  seconds. CPU: L = 10^5, N = 64.
* ``dpbai``: one DP-BAI grid point as bench/dpbai.py (ε = 1, sphere K = 64, d = 10, T = 10^5,
  10^4 repetitions; the second call timed); pulls/s = R x T / wall seconds. CPU: R = 10^3.
* ``latent_mdp``: E1 of bench/latent_mdp.py (garnet M = 2, S = 3, A = 2, H = 4) at K = 2000
  episodes for 20 and 100 seeds, two learners; agent-steps/s = N x K x H / run seconds.
  CPU: K = 500, 20 seeds.

On a machine with an accelerator the tables are appended to bench/gpu_results.md (``--out``,
``--no-write``); on a CPU-only machine nothing is written (it says so). ``--smoke`` runs every
section at a tiny size (and, on a CPU-only machine, the new sections' main rows too, on the CPU),
to check the script anywhere in a few minutes.

    python bench/gpu.py                               # all sections (GPU: a few minutes)
    python bench/gpu.py --sections paging dpbai       # some sections
    python bench/gpu.py --smoke                       # a dry run of every row at tiny sizes
    python bench/gpu.py --quick                       # the bandits rows at small sizes
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.append(str(ROOT / "bench"))  # the other bench scripts, after the packages


# the bandits section's rows; thompson_spares3: 4 rounds of gamma candidates per step, so that
# almost no lane needs the keyed fallback, which runs one lane after another (`cond_lanes`)
BANDIT_AGENTS = ("ucb1", "ucb1_sweep", "thompson", "thompson_spares3", "counter_tree")
SWEEP_C = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)  # the in-program sweep's values of UCB1's c


def measure(agent_name: str, horizon: int, seeds: int) -> dict:
    """One run (compile excluded by the engine): rate, compile and run seconds, final metric.

    `agent_name`: ucb1, thompson, ucb1_sweep (8 values of c in one program; the rate counts
    every config's agent-steps), thompson_spares3 (Thompson sampling with ``spares=3``) or
    counter_tree (binary tree counter, research noise, on a
    Bernoulli(1/2) stream; its metric is the squared error of the release)."""
    import jax
    import numpy as np

    from bandits import bernoulli_bandit
    from bandits.agents import UCB1, ThompsonSampling
    from experiments.simulate import simulate, simulate_sweep

    metric = "regret"
    if agent_name == "ucb1_sweep":
        env = bernoulli_bandit(10)
        variants = [(env, env.default_params(), UCB1(c=c)) for c in SWEEP_C]
        runs = simulate_sweep({"ucb1": variants}, horizon, seeds, seed=0)["ucb1"]
        r, configs = runs[0], len(runs)
    else:
        if agent_name == "counter_tree":
            from privacy.continual import continual_bernoulli
            from privacy.counters import BinaryTreeCounter

            env, agent, metric = continual_bernoulli(p=0.5), BinaryTreeCounter(rho=0.5), "sq_error"
        else:
            env = bernoulli_bandit(10)
            agent = {
                "ucb1": UCB1(),
                "thompson": ThompsonSampling(),
                "thompson_spares3": ThompsonSampling(spares=3),
            }[agent_name]
        r, configs = simulate(env, env.default_params(), agent, horizon, seeds, seed=0), 1
    final = r.final[metric]
    return {
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
        "agent": agent_name,
        "unroll": int(os.environ.get("REGRETLAB_SCAN_UNROLL", "1")),
        "T": horizon,
        "N": seeds,
        "configs": configs,
        # run_seconds of a swept config is 1/C of the program's: C x N x T agent-steps in C x it
        "steps_per_s": r.agent_steps_per_second,
        "compile_s": r.compile_seconds,
        "run_s": r.run_seconds * configs,
        "metric": metric,
        "final": float(final.mean()),
        "final_se": float(final.std(ddof=1) / np.sqrt(seeds)),
        "chunk": r.info["chunk_size"],
    }


SECTIONS = ("bandits", "paging", "dpbai", "latent_mdp")
LMDP_AGENTS = ("latent_value_optimistic@0.02", "latent_psrl")  # two of bench/latent_mdp.py's


def _facts() -> dict:
    import jax

    return {"backend": jax.default_backend(), "device": str(jax.devices()[0].device_kind)}


ROW = "ROW "  # the prefix of a measured row on a --job subprocess's stdout


def _emit(rows: list[dict], row: dict) -> list[dict]:
    """Append `row` to `rows` and print it at once (a job past its time keeps its rows)."""
    rows.append(row)
    print(ROW + json.dumps(row), flush=True)
    return rows


def measure_paging(
    length: int, pages: int, k: int, seeds: list[int], flips: list[float], algos: list[str]
) -> list[dict]:
    """env=paging (bench/paging.py's Zipf trace): one compiled program per (algorithm, p, N),
    its N seeds vmapped; requests/s = N x L / run seconds (compile apart)."""
    from experiments.simulate import compile_simulation
    from paging.classic import LRU, Marker
    from paging.env import Paging

    agents = {"lru": LRU, "marker": Marker}
    kw = dict(trace="zipf", length=length, pages=pages, alpha=1.0, cache_size=k)
    rows = []
    for p in flips:
        env = Paging(**kw, predictions="discard", flip_p=p)
        for name in algos:
            for n in seeds:
                r = compile_simulation(env, (), agents[name](), length, n, grid=[length]).run()
                faults = np.asarray(r.final["faults"], np.float64)
                _emit(
                    rows,
                    {
                        **_facts(),
                        "section": "paging",
                        "what": f"{name}, p = {p:g}",
                        "size": f"L = {length:.0e}, k = {k}, N = {n}",
                        "N": n,
                        "rate": n * length / r.run_seconds,
                        "unit": "requests/s",
                        "compile_s": r.compile_seconds,
                        "run_s": r.run_seconds,
                        "metric": f"fault rate {faults.mean() / length:.4f}",
                    },
                )
    return rows


def measure_dpbai(horizon: int, reps: int) -> list[dict]:
    """One DP-BAI grid point through bench/dpbai.py's `engine_dpbai` (second call timed)."""
    from dpbai import engine_dpbai

    from bandits.linear_bai import linear_bai

    env = linear_bai("sphere", K=64, d=10, alpha=0.1, instance_seed=0)
    res, compile_s, _, wall = engine_dpbai(env, env.default_params(), horizon, reps, 1.0)
    err = np.asarray(res.final["error"], np.float64)
    return _emit(
        [],
        {
            **_facts(),
            "section": "dpbai",
            "what": "DP-BAI, ε = 1, K = 64, d = 10",
            "size": f"T = {horizon:.0e}, R = {reps}",
            "N": reps,
            "rate": reps * horizon / wall,
            "unit": "pulls/s",
            "compile_s": compile_s,
            "run_s": wall,
            "metric": f"error rate {err.mean():.4f} ± {err.std(ddof=1) / np.sqrt(reps):.2g}",
        },
    )


def measure_latent_mdp(episodes: int, seeds: list[int], agents: list[str]) -> list[dict]:
    """E1 (bench/latent_mdp.py's `e1_rows`) for the given learners and seed counts."""
    import latent_mdp

    latent_mdp.AGENTS = list(agents)  # e1_rows runs the module's list of learners
    rows = []
    for n in seeds:
        for e in latent_mdp.e1_rows(episodes, n):
            _emit(
                rows,
                {
                    **_facts(),
                    "section": "latent_mdp",
                    "what": e["agent"],
                    "size": f"K = {episodes}, H = 4, N = {n}",
                    "N": n,
                    "rate": e["agent-steps/s"],
                    "unit": "agent-steps/s",
                    "compile_s": e["compile s"],
                    "run_s": e["run s"],
                    "metric": f"regret {e['regret at K']}",
                },
            )
    return rows


MEASURES = {"paging": measure_paging, "dpbai": measure_dpbai, "latent_mdp": measure_latent_mdp}


JOB_TIMEOUT_S = 240.0  # a subprocess past this is stopped (its rows so far are kept)


def _subprocess(argv: list[str], cpu: bool, unroll: int = 1) -> str | None:
    """Run this script with `argv` (JAX on the CPU backend if `cpu`); its stdout (None, with
    its stderr's tail printed, if it failed; what it printed so far if it ran past
    JOB_TIMEOUT_S)."""
    env = dict(os.environ, REGRETLAB_SCAN_UNROLL=str(unroll))
    if cpu:
        env["JAX_PLATFORMS"] = "cpu"
    cmd = [sys.executable, __file__, *argv]
    try:
        out = subprocess.run(
            cmd, env=env, capture_output=True, text=True, check=False, timeout=JOB_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as e:
        print(f"stopped (over {JOB_TIMEOUT_S:.0f} s): {argv}", file=sys.stderr, flush=True)
        partial = e.stdout or ""
        return partial.decode() if isinstance(partial, bytes) else partial
    if out.returncode:
        print(out.stderr[-2000:], file=sys.stderr)
        return None
    return out.stdout


def section_jobs(args: argparse.Namespace) -> dict[str, tuple[dict, dict]]:
    """Per new section: the keyword arguments of its main run and of its CPU reference."""
    sm = args.smoke
    length, pages, k = (4000, 2000, 100) if sm else (args.paging_length, 100_000, 1000)
    cpu_len = 4000 if sm else args.paging_cpu_length
    seeds = [8] if sm else args.paging_seeds
    pg = dict(pages=pages, k=k, flips=args.paging_p, algos=args.paging_algos)
    T, R = (10_000, 200) if sm else (100_000, args.dpbai_reps)
    K, lseeds = (20, [4]) if sm else (args.lmdp_episodes, args.lmdp_seeds)
    agents = list(LMDP_AGENTS[:1] if sm else args.lmdp_agents)
    return {
        "paging": (
            dict(length=length, seeds=seeds, **pg),
            dict(length=cpu_len, seeds=seeds[:1], **pg),
        ),
        "dpbai": (
            dict(horizon=T, reps=R),
            dict(horizon=T, reps=200 if sm else args.dpbai_cpu_reps),
        ),
        "latent_mdp": (
            dict(episodes=K, seeds=lseeds, agents=agents),
            dict(episodes=K if sm else args.lmdp_cpu_episodes, seeds=lseeds[:1], agents=agents),
        ),
    }


def section_table(rows: list[dict]) -> str:
    """One markdown table of the new sections' rows, each with its ratio to the CPU backend's
    rate for the same `what` (measured in the same run, at the reference size)."""
    cpu = {}
    for r in rows:
        if r["role"] == "cpu":
            cpu.setdefault((r["section"], r["what"]), r["rate"])
    lines = [
        "| section | what | backend | device | size | rate | unit | vs CPU (per step, same"
        " machine) | compile s | run s | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ref = cpu.get((r["section"], r["what"]))
        ratio = (
            "1 (reference)" if r["role"] == "cpu" else (f"{r['rate'] / ref:.2f}" if ref else "–")
        )
        lines.append(
            f"| {r['section']} | {r['what']} | {r['backend']} | {r['device']} | {r['size']} |"
            f" {r['rate']:.3g} | {r['unit']} | {ratio} | {r['compile_s']:.1f} |"
            f" {r['run_s']:.2f} | {r['metric']} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="default: all"
    )
    ap.add_argument("--horizon", type=int, default=100_000)
    ap.add_argument("--ts-horizon", type=int, default=10_000)
    ap.add_argument("--counter-horizon", type=int, default=4096)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1000, 100_000])
    ap.add_argument("--cpu-seeds", type=int, nargs="+", default=[1000])
    ap.add_argument(
        "--cpu-horizon-div",
        type=int,
        default=10,
        help="the bandit CPU rows of UCB1 and Thompson sampling run T / this (rates per step)",
    )
    ap.add_argument("--unroll", type=int, nargs="+", default=[1, 8])
    ap.add_argument(
        "--bandit-agents",
        nargs="+",
        choices=BANDIT_AGENTS,
        default=list(BANDIT_AGENTS),
        help="the bandits section's rows (default: all)",
    )
    ap.add_argument("--paging-length", type=int, default=1_000_000)
    ap.add_argument("--paging-cpu-length", type=int, default=100_000)
    ap.add_argument("--paging-seeds", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--paging-p", type=float, nargs="+", default=[0.2])
    ap.add_argument(
        "--paging-algos", nargs="+", choices=("lru", "marker"), default=["lru", "marker"]
    )
    ap.add_argument("--dpbai-reps", type=int, default=10_000)
    ap.add_argument("--dpbai-cpu-reps", type=int, default=1000)
    ap.add_argument("--lmdp-episodes", type=int, default=2000)
    ap.add_argument("--lmdp-cpu-episodes", type=int, default=500)
    ap.add_argument("--lmdp-seeds", type=int, nargs="+", default=[20, 100])
    ap.add_argument("--lmdp-agents", nargs="+", default=list(LMDP_AGENTS))
    ap.add_argument("--quick", action="store_true", help="the bandits rows at small sizes")
    ap.add_argument("--smoke", action="store_true", help="every section at tiny sizes (dry run)")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: agent,T,N for a subprocess
    ap.add_argument("--job", help=argparse.SUPPRESS)  # internal: JSON {section, kwargs}
    ap.add_argument("--out", default=str(ROOT / "bench" / "gpu_results.md"), help="appended")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    if args.one:
        agent, t, n = args.one.split(",")
        print(json.dumps(measure(agent, int(t), int(n))), flush=True)
        return
    if args.job:
        job = json.loads(args.job)
        MEASURES[job["section"]](**job["kwargs"])  # prints its rows as they come
        return
    if args.quick or args.smoke:
        args.horizon, args.ts_horizon, args.counter_horizon = 1000, 200, 256
        args.seeds, args.cpu_seeds = [100, 1000], [100]
    t0 = time.perf_counter()
    cpu_only = _cpu_only()
    if cpu_only:
        print(
            "No accelerator here (JAX's default backend is the CPU): CPU rows only, nothing"
            " is written to " + args.out + ".",
            flush=True,
        )
    tables = []
    if "bandits" in args.sections:
        tables.append(bandit_table(args, cpu_only))
    jobs = section_jobs(args)
    rows = []
    for section in (s for s in SECTIONS[1:] if s in args.sections):
        main_kw, cpu_kw = jobs[section]
        plan = [("cpu", cpu_kw)]
        if not cpu_only or args.smoke:  # CPU-only: the main rows run (on the CPU) when smoking
            plan.insert(0, ("main", main_kw))
        for role, kw in plan:
            out = _subprocess(
                ["--job", json.dumps({"section": section, "kwargs": kw})], role == "cpu"
            )
            for line in (out or "").splitlines():
                if not line.startswith(ROW):
                    continue
                r = json.loads(line[len(ROW) :])
                r["role"] = role
                rows.append(r)
                print(json.dumps(r), flush=True)
    if rows:
        tables.append(section_table(rows))
    text = "\n\n".join(tables) + f"\n\nTotal wall time: {time.perf_counter() - t0:.0f} s."
    print(text)
    if cpu_only or args.no_write:
        print("(not written: " + ("CPU-only machine" if cpu_only else "--no-write") + ")")
        return
    from _common import machine_facts

    facts = machine_facts(ROOT, "bench/gpu.py", sections=" ".join(args.sections))
    cmd = "python bench/gpu.py " + " ".join(sys.argv[1:])
    with open(args.out, "a") as f:
        f.write(f"\n## {facts['date']}\n\n`{cmd}`\n\n```\n{json.dumps(facts)}\n```\n\n{text}\n")
    print("appended to " + args.out)


def bandit_table(args: argparse.Namespace, cpu_only: bool) -> str:
    """The bandits section: UCB1 (unrolled or not), the UCB1 sweep, Thompson sampling and the
    tree counter for each N, on the default backend and the CPU backend."""
    plan = [("ucb1", args.horizon, u) for u in args.unroll]
    plan += [("ucb1_sweep", args.horizon, 1), ("thompson", args.ts_horizon, 1)]
    plan += [("thompson_spares3", args.ts_horizon, 1)]
    plan += [("counter_tree", args.counter_horizon, 1)]
    plan = [p for p in plan if p[0] in args.bandit_agents]
    rows = []
    for agent, horizon, unroll in plan:
        for platform, seed_list in (("default", args.seeds), ("cpu", args.cpu_seeds)):
            if platform == "default" and cpu_only:
                continue  # no accelerator: the CPU rows are the whole table
            t = horizon
            if platform == "cpu" and agent != "counter_tree":
                t = max(horizon // args.cpu_horizon_div, 1)
            for n in seed_list:
                out = _subprocess(["--one", f"{agent},{t},{n}"], platform == "cpu", unroll)
                if not out or not out.strip():
                    continue
                try:
                    row = json.loads(out.strip().splitlines()[-1])
                except ValueError:  # stopped before its row
                    continue
                rows.append(row)
                print(json.dumps(row), flush=True)
    cpu = {
        (r["agent"], r["N"], r["unroll"]): r["steps_per_s"] for r in rows if r["backend"] == "cpu"
    }
    lines = [
        "| agent | unroll | backend | device | T | N | configs | agent-steps/s |"
        " vs CPU (same N, per step, same machine) | compile s | run s | final metric ± SE |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ref = cpu.get((r["agent"], r["N"], r["unroll"]))
        ratio = f"{r['steps_per_s'] / ref:.2f}" if ref else "–"
        lines.append(
            f"| {r['agent']} | {r['unroll']} | {r['backend']} | {r['device']} | {r['T']:.0e} |"
            f" {r['N']} | {r['configs']} | {r['steps_per_s']:.3g} | {ratio} |"
            f" {r['compile_s']:.1f} | {r['run_s']:.1f} |"
            f" {r['metric']} {r['final']:.4g} ± {r['final_se']:.2g} |"
        )
    return "\n".join(lines)


def _cpu_only() -> bool:
    """Whether this machine has no accelerator (asked in a subprocess: JAX stays unloaded here)."""
    cmd = [sys.executable, "-c", "import jax; print(jax.default_backend())"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return out.stdout.strip() == "cpu"


if __name__ == "__main__":
    main()
