"""Latent MDP (env=latent_mdp): the reproduction's E1 at full size, and the learners' planner
against a NumPy history-tree planner, in one process.

1. E1 of ``regretlab-reproduce latent_mdp_zhou2023`` (`rl.reproduction`): garnet M = 2, S = 3,
   A = 2, H = 4, Γ = 2 (``instance_seed=1``), K = 2·10⁴ episodes, 20 seeds, exact per-episode
   pseudo-regret (`rl.optimistic.PseudoRegret` through `experiments.rollout.rollout`, jit + vmap
   over the seeds), for the value-optimistic learner (theory constants and tuned), the
   L-UCRL-style one (tuned), posterior sampling and context-agnostic UCBVI. Compile and run
   are timed apart; agent-steps/s = seeds · K · H / run seconds.
2. The learners' planner (`rl.optimistic.plan_histories`: dense history tensors, S (A M S)^(h−1)
   nodes at step h, Bernstein bonus, jitted) against the same dense recursion written in NumPy
   (`numpy_plan` below: level-synchronous, vectorised over the nodes of a level) on the E1
   instance's empirical model (H = 4 and 5), one plan and a batch of 20 (the engine re-plans all
   seeds at once, vmapped); nodes/s = plans · nodes / seconds, median of `--rounds`. Values are
   checked equal. `rl.planning.history_tree_value` (the NumPy planner that computes V*: sparse,
   only histories of positive probability) is timed beside it.

3. ``--bonus-terms H[,H...]`` (the audit in docs/latent_mdp.md, not a timing): on E2's lattice
   (S = 3, A = 2, ρ = 3, ``instance_seed=2``) run a learner for ``--episodes`` episodes, replay
   each seed's trajectories to its counts at k = K/10 and K, plan with the independent reference
   recursion of ``tests/test_latent_mdp_bonus.py`` and print, per episode, the expected bonus
   along the planned policy in the true LMDP, Σ_h E^{π_k}[β_h], split into its c₁ (variance) and
   c₃ (lower-order) parts (the Hoeffding bonus under "c₁").

4. ``--horizon-cost H[,H...]`` (E2 past H = 5): on E2's lattice, the dense history nodes, the
   compiled planner's memory (XLA's memory analysis), CPU seconds of one re-plan (one seed; 10
   seeds vmapped, as `cond_any` re-plans them) and of the policy evaluation, and, with
   ``--episodes K`` > 0, one 10-seed run of the tuned value-optimistic learner with
   ``replan="batch"`` (every seed re-planned when one refreshes; ``--lanes``: ``"lanes"``, only
   the seeds that refresh).
5. ``--e2-grid H[,H...]``: E2's two tuned learners at these H (``--replan lanes|batch``, default
   lanes as the learners), regret at K, CPU seconds of compile and run, and the log-log slopes
   in H as E2 computes them. ``--planner points``: the learners plan with point-based value
   iteration (`rl.points`, n = 64), as the reproduction's E2 now does at H = 2..64
   (docs/latent_mdp.md, "Point-based planner").

    uv run python bench/latent_mdp.py                    # full; writes bench/latent_mdp_results.md
    uv run python bench/latent_mdp.py --episodes 5000 --no-write
    uv run python bench/latent_mdp.py --bonus-terms 2,3,4,5 --episodes 10000 --seeds 2
    uv run python bench/latent_mdp.py --horizon-cost 5,6,7 --episodes 0 --seeds 10 --rounds 3
    uv run python bench/latent_mdp.py --horizon-cost 5,6 --episodes 10000 --seeds 10 [--lanes]
    uv run python bench/latent_mdp.py --e2-grid 2,3,4,5,6 --episodes 10000 --seeds 10
    uv run python bench/latent_mdp.py --e2-grid 2,3,4,5 --episodes 10000 --seeds 10 --replan batch
    uv run python bench/latent_mdp.py --e2-grid 2,4,8,16,32,64 --episodes 10000 --seeds 10 \
        --planner points
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

AGENTS = [
    "latent_value_optimistic",
    "latent_value_optimistic@0.02",
    "latent_lucrl@0.1",
    "latent_psrl",
    "ucbvi_agnostic",
]


# --------------------------------------------------------------------------- NumPy reference
def numpy_plan(w, nu, P, R, n, iota_, scale, H: int, seed: int = 0) -> tuple[np.ndarray, float]:
    """The dense history recursion of `rl.optimistic.plan_histories` in NumPy (float64): the
    same nodes (node n of a level has state n % S; child (a, j, s') of node n is
    ((n A + a) M + j) S + s'), the same Bernstein bonus and clip at 1, the same tie rule (the
    k-th maximiser, k = a uniform 32-bit word mod their number; words from NumPy's generator,
    not JAX's, so tied actions differ, values do not). Returns (policy, V̄)."""
    from rl.backup import C1, C3

    rng = np.random.default_rng(seed)

    M, S, A, _ = P.shape
    cls = np.argmax(R[:, None] == R[None, :], axis=1)  # (M, S, A)
    onehot = (cls[..., None] == np.arange(M)).astype(float)  # (M, S, A, J)
    us = [(w[:, None] * nu).T]
    for _ in range(H - 1):
        u = us[-1]
        s = np.arange(u.shape[0]) % S
        child = u.T[:, :, None, None, None] * onehot[:, s][..., None] * P[:, s][:, :, :, None, :]
        us.append(child.reshape(M, -1).T)
    alpha, policies = None, []
    for h in reversed(range(H)):
        u = us[h]
        N = u.shape[0]
        s = np.arange(N) % S
        Rs, ns = R[:, s], np.maximum(n[:, s], 1.0)
        if alpha is None:
            E = var = np.zeros_like(Rs)
        else:
            nxt = alpha.reshape(N, A, M, S, M).transpose(4, 0, 1, 2, 3)
            v = np.take_along_axis(nxt, cls[:, s][..., None, None], axis=3)[..., 0, :]
            Ps = P[:, s]
            E = (Ps * v).sum(-1)
            var = np.maximum((Ps * v * v).sum(-1) - E * E, 0.0)
        beta = scale * (C1 * np.sqrt(var * iota_ / ns) + C3 * iota_ / ns)
        vec = np.minimum(1.0, Rs + E + beta)
        q = np.einsum("nm,mna->na", u, vec)
        top = q == q.max(1, keepdims=True)
        k = rng.integers(0, 2**32, N, dtype=np.uint64) % top.sum(1).astype(np.uint64)
        best = np.argmax(top & (np.cumsum(top, 1) - 1 == k[:, None].astype(np.int64)), 1)
        alpha = np.take_along_axis(vec, best[None, :, None], axis=2)[..., 0].T
        policies.append(best)
    policies.reverse()
    return np.concatenate(policies), float((us[0] * alpha).sum())


def empirical_model(model, seed: int, visits: int = 20_000):
    """An empirical LMDP of the instance: `visits` sampled transitions per (m, s, a)."""
    rng = np.random.default_rng(seed)
    M, S, A, _ = model.sizes
    counts = np.zeros((M, S, A, S))
    for m in range(M):
        for s in range(S):
            for a in range(A):
                counts[m, s, a] = rng.multinomial(visits, model.transitions[m, s, a])
    n = counts.sum(-1)
    return counts / n[..., None], n


def _median_seconds(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def planner_rows(rounds: int, batch: int) -> list[dict]:
    rows = []
    for H in (4, 5):
        rows += _planner_case(H, rounds, batch)
    return rows


def _planner_case(H: int, rounds: int, batch: int) -> list[dict]:
    import jax
    import jax.numpy as jnp

    from rl.latent_mdp import LatentMDP
    from rl.optimistic import iota, model_inputs, plan_histories, plan_nodes
    from rl.planning import history_tree_value, tree_size_bound

    model = LatentMDP(num_states=3, episode_length=H, instance_seed=1).model
    M, S, A, _ = model.sizes
    nodes = plan_nodes(M, S, A, H)
    emp = [empirical_model(model, b) for b in range(batch)]
    io = float(iota(M, S, A, H, 10_000, 0.1))
    scale = 0.02
    f = jnp.result_type(float)

    def inputs(P, n):
        return model_inputs(model.weights, model.init, P, model.rewards, n, io, scale, dtype=f)

    one = jax.jit(lambda x, H=H: plan_histories(x, H, "bernstein").value)
    many = jax.jit(jax.vmap(lambda x, H=H: plan_histories(x, H, "bernstein").value))
    x1 = inputs(*emp[0])
    xb = jax.tree.map(lambda *a: jnp.stack(a), *[inputs(P, n) for P, n in emp])
    t = time.perf_counter()
    one(x1).block_until_ready()
    many(xb).block_until_ready()
    compile_s = time.perf_counter() - t
    t_one = _median_seconds(lambda: one(x1).block_until_ready(), rounds)
    t_many = _median_seconds(lambda: many(xb).block_until_ready(), rounds)

    def np_one(P, n):
        return numpy_plan(model.weights, model.init, P, model.rewards, n, io, scale, H)[1]

    t_np = _median_seconds(lambda: np_one(*emp[0]), rounds)
    t_np_many = _median_seconds(lambda: [np_one(P, n) for P, n in emp], max(1, rounds // 2))
    v_jax, v_np = float(one(x1)), np_one(*emp[0])
    t_tree = _median_seconds(lambda: history_tree_value(model), rounds)
    tree = tree_size_bound(model)
    rows = [
        {
            "H": H,
            "planner": "JAX plan_histories (jit), 1 plan",
            "nodes": nodes,
            "ms": 1e3 * t_one,
            "nodes/s": nodes / t_one,
            "value": v_jax,
        },
        {
            "H": H,
            "planner": f"JAX plan_histories (jit, vmap {batch})",
            "nodes": nodes * batch,
            "ms": 1e3 * t_many,
            "nodes/s": nodes * batch / t_many,
            "value": float("nan"),
        },
        {
            "H": H,
            "planner": "NumPy dense recursion, 1 plan",
            "nodes": nodes,
            "ms": 1e3 * t_np,
            "nodes/s": nodes / t_np,
            "value": v_np,
        },
        {
            "H": H,
            "planner": f"NumPy dense recursion, {batch} plans",
            "nodes": nodes * batch,
            "ms": 1e3 * t_np_many,
            "nodes/s": nodes * batch / t_np_many,
            "value": float("nan"),
        },
        {
            "H": H,
            "planner": "NumPy rl.planning.history_tree_value (V*, sparse)",
            "nodes": tree,
            "ms": 1e3 * t_tree,
            "nodes/s": tree / t_tree,
            "value": history_tree_value(model),
        },
    ]
    print(
        f"planner H={H}: {nodes} nodes; JAX {1e3 * t_one:.2f} ms, vmap {batch}"
        f" {1e3 * t_many:.2f} ms, NumPy {1e3 * t_np:.2f} ms (x{batch}: {1e3 * t_np_many:.1f}"
        f" ms); |V_jax - V_np| = {abs(v_jax - v_np):.2g}; compile {compile_s:.1f} s",
        flush=True,
    )
    assert abs(v_jax - v_np) <= 1e-4, (v_jax, v_np)  # float32 vs float64, values <= 1
    assert v_np < 1.0  # the clip at 1 is not binding everywhere (a real comparison)
    return rows


# --------------------------------------------------------------------------- E1
def e1_rows(K: int, seeds: int) -> list[dict]:
    import jax

    from rl.latent_mdp import LatentMDP
    from rl.reproduction import (
        E1_ENV,
        k_slope,
        make_agent,
        pseudo_regret_program,
        run_keys,
        t_interval,
    )

    env = LatentMDP(**E1_ENV, instance_seed=1)
    H = env.episode_length
    keys = run_keys(seeds)
    rows = []
    for a in AGENTS:
        fn = jax.jit(pseudo_regret_program(env, make_agent(a), K))
        t = time.perf_counter()
        compiled = fn.lower(keys).compile()
        compile_s = time.perf_counter() - t
        t, c = time.perf_counter(), time.process_time()
        curve, _, refreshes = jax.block_until_ready(compiled(keys))
        run_s, cpu_s = time.perf_counter() - t, time.process_time() - c
        curve = np.asarray(curve, np.float64)
        m, lo, hi = t_interval(curve.sum(1))
        sl = k_slope(curve)
        rows.append(
            {
                "agent": a,
                "compile s": compile_s,
                "run s": run_s,
                "run CPU s": cpu_s,
                "agent-steps/s": seeds * K * H / run_s,
                "regret at K": f"{m:.4g} [{lo:.4g}, {hi:.4g}]",
                "slope [K/10, K]": f"{sl[0]:.2f} [{sl[1]:.2f}, {sl[2]:.2f}]",
                "re-plans": float(np.mean(refreshes)),
            }
        )
        print(
            f"E1 {a}: compile {compile_s:.1f} s, run {run_s:.1f} s (CPU {cpu_s:.1f} s),"
            f" regret {m:.4g} [{lo:.4g}, {hi:.4g}], slope {sl[0]:.2f}",
            flush=True,
        )
    return rows


def bonus_terms(horizons: list[int], K: int, seeds: int) -> list[dict]:
    """The audit's bonus decomposition (module docstring, 3.), both bonuses at the reproduction's
    tuned scales; plain NumPy after one rollout per (H, bonus)."""
    import math

    import jax

    sys.path.insert(0, str(ROOT / "tests"))
    from test_latent_mdp_bonus import ref_plan

    from experiments.rollout import rollout
    from rl.latent_mdp import LatentMDP
    from rl.optimistic import LatentValueOptimistic
    from rl.reproduction import TUNED_LUCRL, TUNED_VO

    def emit(tr):
        fb = tr.feedback
        return tr.obs.obs.state, tr.action, fb.feedback.next_state, fb.revealed

    def walk(model, Rhat, policy, parts, H):
        """Σ_m w_m E_m[Σ_h β₁, Σ_h β₃] along `policy`, rewards classified by the plan's table."""
        P, R = model.transitions, model.rewards
        M, S = P.shape[:2]
        tot = np.zeros(2)

        def go(hist, s, rho, h):
            a = policy[hist]
            tot[0] += rho @ parts[hist][0]
            tot[1] += rho @ parts[hist][1]
            if h == H - 1:
                return
            keys = np.array(
                [
                    float(R[m, s, a]) if np.any(Rhat[:, s, a] == R[m, s, a]) else Rhat[0, s, a]
                    for m in range(M)
                ]
            )
            for r in np.unique(keys):
                for s2 in range(S):
                    nxt = rho * (keys == r) * P[:, s, a, s2]
                    if nxt.sum() > 0:
                        go((*hist, (a, float(r), s2)), s2, nxt, h + 1)

        for s in range(S):
            go((s,), s, model.weights * model.init[:, s], 0)
        return tot

    rows = []
    for H in horizons:
        env = LatentMDP(
            instance="lattice",
            num_states=3,
            num_actions=2,
            rho=3.0,
            instance_seed=2,
            episode_length=H,
        )
        model, params = env.model, env.default_params()
        M, S, A, _ = model.sizes
        for kind, scale in (("bernstein", TUNED_VO), ("hoeffding", TUNED_LUCRL)):
            agent = LatentValueOptimistic(bonus=kind, bonus_scale=scale)
            run = jax.jit(
                jax.vmap(
                    lambda k, env=env, params=params, agent=agent, H=H: rollout(
                        env, params, agent, k, H * K, emit=emit, horizon=K
                    )
                )
            )
            em = [np.asarray(x) for x in run(jax.random.split(jax.random.key(0), seeds)).emitted]
            for k in (K // 10, K):
                parts_sum = np.zeros(2)
                for i in range(seeds):
                    s_, a_, s2_, rev = (x[i][: k * H] for x in em)
                    ctx = rev.reshape(-1, H)[:, -1]
                    counts = np.zeros((M, S, A, S), int)
                    snap = np.zeros((M, S, A), int)
                    snapc = np.zeros((M, S, A, S), int)
                    init, cc = np.zeros((M, S), int), np.zeros(M, int)
                    for e in range(k):
                        sl = slice(e * H, (e + 1) * H)
                        np.add.at(counts, (ctx[e], s_[sl], a_[sl], s2_[sl]), 1)
                        init[ctx[e], s_[sl][0]] += 1
                        cc[ctx[e]] += 1
                        n = counts.sum(-1)
                        bl = np.frompyfunc(lambda x: int(x).bit_length(), 1, 1)
                        cross = bl(n).astype(int) > bl(snap).astype(int)
                        snap = np.where(cross, n, snap)
                        snapc = np.where(cross[..., None], counts, snapc)
                    n = snap.astype(float)
                    Ph = np.where(n[..., None] > 0, snapc / np.maximum(n, 1)[..., None], 1 / S)
                    ni = init.sum(-1, keepdims=True)
                    nu = np.where(ni > 0, init / np.maximum(ni, 1), 1 / S)
                    Rhat = np.where(counts.sum(-1) > 0, model.rewards, 1.0)
                    io = 2 * math.log(2 * M * S * A * H * k / 0.1)
                    _, pol, parts = ref_plan(cc / cc.sum(), nu, Ph, Rhat, n, io, scale, kind, H)
                    parts_sum += walk(model, Rhat, pol, parts, H)
                c1, c3 = parts_sum / seeds
                rows.append(
                    {
                        "H": H,
                        "bonus": f"{kind}@{scale:g}",
                        "k": k,
                        "c1 part": float(c1),
                        "c3 part": float(c3),
                    }
                )
                print(rows[-1], flush=True)
    return rows


# --------------------------------------------------------------------------- E2 at larger H
def horizon_cost(
    horizons: list[int], K: int, seeds: int, rounds: int, lanes: bool = False
) -> list[dict]:
    """What E2 (lattice S = 3, A = 2, M = 2, ``instance_seed=2``) costs at horizon H: the dense
    history nodes, the compiled planner's memory (XLA's `memory_analysis`: arguments, outputs
    and temporaries), the CPU seconds of one re-plan of one seed and of the `seeds` seeds at
    once (vmapped, as `cond_any` re-plans every lane when one refreshes), the policy evaluation
    of `PseudoRegret` likewise, and (K > 0) one `seeds`-seed run of E2's value-optimistic learner
    for K episodes (compile and run timed apart; CPU seconds of the process, all threads).

    H ≥ 6 exceeds the planner's default node budget (`rl.optimistic.MAX_PLAN_NODES`, also read
    by `PseudoRegret.init`); this measurement raises it for its own process only. ``lanes``: the
    learner runs with ``replan="lanes"`` (`experiments.batched_cond.cond_lanes`: only the seeds
    that refresh, one after another; the learners' default) instead of ``"batch"`` (`cond_any`:
    every seed when one refreshes): the same plans, a different cost."""
    import resource

    import jax
    import jax.numpy as jnp

    import rl.optimistic as ro
    from rl.latent_mdp import LatentMDP
    from rl.optimistic import (
        EvalInputs,
        evaluate_policy,
        iota,
        model_inputs,
        plan_histories,
        plan_nodes,
    )
    from rl.reproduction import E2_ENV, TUNED_VO, pseudo_regret_program, run_keys

    def cpu_median(fn, x, n):
        times = []
        for _ in range(n):
            c = time.process_time()
            jax.block_until_ready(fn(x))
            times.append(time.process_time() - c)
        return statistics.median(times)

    def mem_gb(compiled):
        m = compiled.memory_analysis()
        if m is None:
            return float("nan")
        b = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
        return b / 2**30

    rows = []
    for H in horizons:
        env = LatentMDP(instance="lattice", **E2_ENV, episode_length=H)
        model = env.model
        M, S, A, _ = model.sizes
        nodes = plan_nodes(M, S, A, H)
        ro.MAX_PLAN_NODES = max(ro.MAX_PLAN_NODES, nodes)
        f = jnp.result_type(float)
        emp = [empirical_model(model, b, visits=200) for b in range(seeds)]
        io = float(iota(M, S, A, H, K or 10_000, 0.1))

        def inputs(P, n, model=model, io=io, f=f):
            return model_inputs(
                model.weights, model.init, P, model.rewards, n, io, TUNED_VO, dtype=f
            )

        x1 = inputs(*emp[0])
        xb = jax.tree.map(lambda *a: jnp.stack(a), *[inputs(P, n) for P, n in emp])
        one = jax.jit(lambda x, H=H: plan_histories(x, H, "bernstein"))
        many = jax.jit(jax.vmap(lambda x, H=H: plan_histories(x, H, "bernstein")))
        t = time.process_time()
        c_one, c_many = one.lower(x1).compile(), many.lower(xb).compile()
        compile_cpu = time.process_time() - t
        plan = c_one(x1)
        ev = EvalInputs(
            policy=plan.policy,
            plan_rewards=plan.rewards,
            weights=jnp.asarray(model.weights, f),
            init=jnp.asarray(model.init, f),
            transitions=jnp.asarray(model.transitions, f),
            rewards=jnp.asarray(model.rewards, f),
        )
        evb = jax.tree.map(lambda a: jnp.stack([a] * seeds), ev)
        e_many = jax.jit(jax.vmap(lambda x, H=H: evaluate_policy(x, H))).lower(evb).compile()
        row = {
            "H": H,
            "re-plan": "lanes" if lanes else "batch",
            "nodes": nodes,
            "plan GB (1; vmap)": f"{mem_gb(c_one):.2f}; {mem_gb(c_many):.2f}",
            "plan compile CPU s": compile_cpu,
            "1 plan CPU s": cpu_median(c_one, x1, rounds),
            f"vmap {seeds} plans CPU s": cpu_median(c_many, xb, max(1, rounds // 2)),
            f"vmap {seeds} evaluations CPU s": cpu_median(e_many, evb, max(1, rounds // 2)),
            "peak RSS GB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        }
        print(row, flush=True)
        if K:
            agent = ro.LatentValueOptimistic(
                bonus_scale=TUNED_VO,
                max_nodes=max(nodes, 1 << 19),
                replan="lanes" if lanes else "batch",
            )
            keys = run_keys(seeds)
            t, c = time.perf_counter(), time.process_time()
            compiled = jax.jit(pseudo_regret_program(env, agent, K)).lower(keys).compile()
            row["run compile s (CPU s)"] = (
                f"{time.perf_counter() - t:.0f} ({time.process_time() - c:.0f})"
            )
            t, c = time.perf_counter(), time.process_time()
            curve, _, refreshes = jax.block_until_ready(compiled(keys))
            row[f"K={K} run s (CPU s)"] = (
                f"{time.perf_counter() - t:.0f} ({time.process_time() - c:.0f})"
            )
            row["re-plans per seed"] = float(np.mean(refreshes))
            row["regret at K"] = float(np.asarray(curve, np.float64).sum(1).mean())
            row["peak RSS GB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
            print(row, flush=True)
        rows.append(row)
    return rows


def e2_grid(
    horizons: list[int], K: int, seeds: int, replan: str = "lanes", planner: str = "histories"
) -> tuple[list[dict], dict]:
    """E2 of the reproduction (lattice S = 3, A = 2, M = 2, ``instance_seed=2``, both tuned
    learners, `seeds` seeds, K episodes) over `horizons`, past the planner's default node budget:
    the learners re-plan by ``replan`` (``lanes``: only the seeds that refresh; ``batch``: all
    when one does) with ``max_nodes`` raised to the plan's node count, and
    `rl.optimistic.MAX_PLAN_NODES` is raised in this process only (see `horizon_cost`). Returns
    the rows (regret at K, seconds) and the log-log slopes in H with `rl.reproduction.x_slope`'s
    bootstrap intervals, as E2 computes them. ``planner="points"``: the point-based planner
    (`rl.points`, default resolution), no node budget raised."""
    import jax

    import rl.optimistic as ro
    from rl.latent_mdp import LatentMDP
    from rl.reproduction import (
        E2_ENV,
        TUNED_LUCRL,
        TUNED_VO,
        pseudo_regret_program,
        run_keys,
        t_interval,
        x_slope,
    )

    agents = {f"latent_value_optimistic@{TUNED_VO}": ("bernstein", TUNED_VO)}
    agents[f"latent_lucrl@{TUNED_LUCRL}"] = ("hoeffding", TUNED_LUCRL)
    rows, totals = [], {a: [] for a in agents}
    keys = run_keys(seeds)
    for H in horizons:
        env = LatentMDP(instance="lattice", **E2_ENV, episode_length=H)
        M, S, A, _ = env.model.sizes
        nodes = ro.plan_nodes(M, S, A, H) if planner == "histories" else 0
        ro.MAX_PLAN_NODES = max(ro.MAX_PLAN_NODES, nodes)
        for name, (kind, scale) in agents.items():
            agent = ro.LatentValueOptimistic(
                bonus=kind,
                bonus_scale=scale,
                max_nodes=max(nodes, 1 << 19),
                replan=replan,
                planner=planner,
            )
            t, c = time.perf_counter(), time.process_time()
            compiled = jax.jit(pseudo_regret_program(env, agent, K)).lower(keys).compile()
            comp = (time.perf_counter() - t, time.process_time() - c)
            t, c = time.perf_counter(), time.process_time()
            curve, _, refreshes = jax.block_until_ready(compiled(keys))
            run = (time.perf_counter() - t, time.process_time() - c)
            tot = np.asarray(curve, np.float64).sum(1)
            totals[name].append(tot)
            rows.append(
                {
                    "H": H,
                    "agent": name,
                    "replan": replan,
                    "planner": planner,
                    "V*": env.v_star,
                    f"regret at K={K} (95% CI)": "{:.4g} [{:.4g}, {:.4g}]".format(*t_interval(tot)),
                    "re-plans per seed": float(np.mean(refreshes)),
                    "compile s (CPU s)": f"{comp[0]:.0f} ({comp[1]:.0f})",
                    "run s (CPU s)": f"{run[0]:.1f} ({run[1]:.1f})",
                }
            )
            print(rows[-1], flush=True)
    slopes = {a: x_slope(horizons, ts) for a, ts in totals.items()}
    return rows, slopes


def main(argv: list[str] | None = None) -> int:
    from _common import machine_facts

    from experiments.reproduce import markdown

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=20_000, help="K of E1")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=7, help="timed repetitions of the planners")
    ap.add_argument("--batch", type=int, default=20, help="plans per batched call")
    ap.add_argument("--no-e1", action="store_true", help="planner comparison only")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--bonus-terms", default="", help="H list: the audit's bonus decomposition")
    ap.add_argument("--horizon-cost", default="", help="H list: E2's cost at these horizons")
    ap.add_argument("--lanes", action="store_true", help="--horizon-cost: re-plan per lane")
    ap.add_argument("--e2-grid", default="", help="H list: E2's runs and slopes at these H")
    ap.add_argument("--replan", default="lanes", choices=["lanes", "batch"], help="--e2-grid")
    ap.add_argument(
        "--planner", default="histories", choices=["histories", "points"], help="--e2-grid"
    )
    args = ap.parse_args(argv)
    if args.e2_grid:
        import os

        import pandas as pd

        from experiments.reproduce import markdown

        hs = [int(h) for h in args.e2_grid.split(",")]
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        rows, slopes = e2_grid(hs, args.episodes, args.seeds, args.replan, args.planner)
        print(f"load before: {load}; after:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
        print(markdown(pd.DataFrame(rows)))
        for a, (m, lo, hi) in slopes.items():
            print(f"{a}: log-log slope in H over {hs}: {m:.2f} [{lo:.2f}, {hi:.2f}]")
        return 0
    if args.horizon_cost:
        import os

        import pandas as pd

        from experiments.reproduce import markdown

        hs = [int(h) for h in args.horizon_cost.split(",")]
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        rows = horizon_cost(hs, args.episodes, args.seeds, args.rounds, args.lanes)
        print(f"load before: {load}; after:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
        print(markdown(pd.DataFrame(rows)))
        return 0
    if args.bonus_terms:
        import pandas as pd

        from experiments.reproduce import markdown

        hs = [int(h) for h in args.bonus_terms.split(",")]
        print(markdown(pd.DataFrame(bonus_terms(hs, args.episodes, args.seeds))))
        return 0
    import os

    load = os.getloadavg()
    t0 = time.perf_counter()
    planners = planner_rows(args.rounds, args.batch)
    e1 = [] if args.no_e1 else e1_rows(args.episodes, args.seeds)
    total = time.perf_counter() - t0
    import pandas as pd

    facts = machine_facts(
        ROOT, "rl", "bench/latent_mdp.py", load_before=" ".join(f"{x:.1f}" for x in load)
    )
    lines = [
        f"## {facts['date']}",
        "",
        "`uv run python bench/latent_mdp.py " + " ".join(argv or sys.argv[1:]) + "`",
        "",
        ", ".join(f"{k}: {v}" for k, v in facts.items() if k != "date")
        + f", load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())},"
        f" total wall {total:.0f} s",
        "",
        "Planners (median of the timed calls; JAX compile excluded):",
        "",
        markdown(pd.DataFrame(planners)),
        "",
    ]
    if e1:
        lines += [
            f"E1: garnet M=2, S=3, A=2, H=4, instance_seed=1, K = {args.episodes},"
            f" {args.seeds} seeds, exact pseudo-regret (95% CI; slope: bootstrap over seeds):",
            "",
            markdown(pd.DataFrame(e1)),
            "",
        ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        out = ROOT / "bench" / "latent_mdp_results.md"
        head = "" if out.exists() else "# bench/latent_mdp.py results\n\n"
        with out.open("a") as f:
            f.write(head + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
