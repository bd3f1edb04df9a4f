"""R7 of our reproduction of Wang (ICML 2023, arXiv:2306.02208): memory accounting.

Every streaming algorithm's peak memory (the env's final metric ``peak_memory``: most arms held at
once, the arriving arm included) is compared, across several K, with

* the bound each algorithm is designed for (the memory orders of Wang's abstract and Assadi & Wang,
  STOC 2020; the constants are ours, from the authors' code's level counts): uniform and naive 2
  (one stored arm + the arriving arm, "single-arm memory"), the doubling king/challenger
  (``stream_jin``, single-arm) 2, Game-of-Arms 3 (king + fractional-stream arm + arriving arm), log
  <= 2 int(ln K), loglog <= 2 (int(ln ln K) + 1), log* <= 2 (log* K + 1) with log* K = the number of
  times ln must be applied to K to reach a value <= 1;
* the algorithm's own ``memory_needed`` (the slots it asks of the env: 2, 3, or L + 1 for a
  tower with L levels), which must lie between the peak and that bound;
* for the towers, an independent reference: `tower_occupancy`, a plain-Python walk of the level
  skeleton of the authors' tower routines that tracks only which levels hold a king or a promoted
  arm. Which levels are occupied does not depend on the rewards (the pull counters c[l] grow by b[l]
  per comparison whoever wins, and a promotion always moves exactly one arm up), so the peak is a
  deterministic function of K and the integer constants b[l], C[l], and every seed must match it
  exactly.

Checks: equality where the bound is exact (2, 2, 2, 3 for every seed and K), equality with the
occupancy walk for the towers, and peak <= memory_needed <= design bound everywhere.

Sizes: T = K^3 (alpha = 1, beta = 3) and the seeds of R4's K sweep, so that the four agents R4
also runs (uniform, naive, log*, GoA) compile to the same programs and hit JAX's persistent
compile cache after R4. Full: K in {250, 1000, 4000, 16000, 64000}; quick: {250, 1000}.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bandits.streaming import (
    DoublingKingChallenger,
    GameOfArms,
    StreamLog,
    StreamLogLog,
    StreamLogStar,
    StreamNaive,
    StreamSpec,
    StreamUniform,
)
from bandits.streaming.reproduction import rates
from bandits.streaming.reproduction.headline import SHORT
from experiments.reproduce import Reproduction

CLASSES = {
    "stream_uniform": StreamUniform,
    "stream_naive": StreamNaive,
    "stream_log": StreamLog,
    "stream_loglog": StreamLogLog,
    "stream_logstar": StreamLogStar,
    "stream_goa": GameOfArms,
    "stream_jin": DoublingKingChallenger,
}
TOWERS = ("stream_log", "stream_loglog", "stream_logstar")
KS = {False: (250, 1000, 4000, 16000, 64000), True: (250, 1000)}


def log_star(K: float) -> int:
    """log* K: how many times ln must be applied to K to reach a value <= 1."""
    n, x = 0, float(K)
    while x > 1.0:
        n, x = n + 1, math.log(x)
    return n


def spec_bound(agent: str, K: int) -> tuple[int, bool]:
    """(bound on peak memory, whether it is an equality): the design bounds of the docstring."""
    if agent in ("stream_uniform", "stream_naive", "stream_jin"):
        return 2, True
    if agent == "stream_goa":
        return 3, True
    if agent == "stream_log":
        return 2 * int(math.log(K)), False
    if agent == "stream_loglog":
        return 2 * (int(math.log(math.log(K))) + 1), False
    if agent == "stream_logstar":
        return 2 * (log_star(K) + 1), False
    raise KeyError(agent)


def tower_occupancy(b: Sequence[int], cap: Sequence[int], K: int) -> int:
    """Peak number of arms held by the authors' tower skeleton on a stream of K arms.

    Tracks per level: a king, a promoted arm waiting (at most one in the whole tower), the pull
    counter c[l]. Level l is full when c[l] > C[l] (the top level never is); a full level promotes
    one arm (the better of king and waiting arm, or the king) to level l + 1 and is cleared; a
    level-0 visit reads the next arm (held with the kings while it is compared) and adds b[0]; a
    visit to a level > 0 with a waiting arm compares it with the king (one of them is discarded)
    and adds b[l]; without one it re-pulls the king (no count). After each level-0 read or
    level > 0 comparison the walk restarts at level 0. Held arms are counted at every state.
    """
    L = len(b)
    king = [False] * L
    wait = [False] * L
    c = [0] * L
    read, peak, lv = 0, 0, 0
    while True:
        if lv < L - 1 and c[lv] > cap[lv]:  # full: promote one arm, clear, go up
            king[lv] = wait[lv] = False
            c[lv] = 0
            if king[lv + 1]:
                wait[lv + 1] = True
            else:
                king[lv + 1] = True
            peak = max(peak, sum(king) + sum(wait))
            lv += 1
            continue
        if lv == 0:
            if read == K:
                return peak
            peak = max(peak, sum(king) + sum(wait) + 1)  # kings + the arriving arm
            read += 1
            king[0] = True  # the arriving arm is king when level 0 is empty, else one is dropped
            c[0] += int(b[0])
        elif wait[lv]:
            wait[lv] = False  # compared with the king; the loser is discarded
            c[lv] += int(b[lv])
        lv = 0


def reference_peak(agent: str, K: int, T: int) -> int | None:
    """The occupancy walk's peak for a tower agent (None for the others)."""
    if agent not in TOWERS:
        return None
    b, cap = CLASSES[agent]().constants(K, T)
    return tower_occupancy(b.tolist(), cap.tolist(), K)


def memory_needed(agent: str, K: int, T: int) -> int:
    """The slots the agent asks of the environment (its ConfigError threshold)."""
    return CLASSES[agent]().memory_needed(StreamSpec(K, T, 10**6))


def memory_runs(
    r: Reproduction, ks: Sequence[int], seeds: int, agents: Sequence[str]
) -> list[tuple[int, int, dict[str, np.ndarray]]]:
    """Per K (T = K^3, as in R4's K sweep): per-seed peak memory of `agents` (one run per K)."""
    out = []
    for K in ks:
        T = rates.horizon(K, 1.0, 3.0)
        run = r.run(
            f"memory-K{K}-T{T}-{len(agents)}",
            [*rates.overrides(K, T, 1.0, 3.0, seeds), f"agents=[{','.join(agents)}]"],
        )
        out.append((K, T, {a: run.final(a, "peak_memory") for a in agents}))
    return out


def memory_item(
    r: Reproduction,
    ks: Sequence[int],
    seeds: int,
    agents: Sequence[str] = tuple(CLASSES),
    item: str = "R7",
) -> None:
    """Table and checks of peak memory vs the stated bounds (module docstring)."""
    rows = []
    for K, T, peaks in memory_runs(r, ks, seeds, agents):
        for agent in agents:
            peak = peaks[agent]
            bound, exact = spec_bound(agent, K)
            need = memory_needed(agent, K, T)
            ref = reference_peak(agent, K, T)
            lo, hi = int(peak.min()), int(peak.max())
            rows.append(
                {
                    "K": K,
                    "algorithm": SHORT[agent],
                    "peak memory (min–max over seeds)": f"{lo}" if lo == hi else f"{lo}–{hi}",
                    "occupancy walk": "–" if ref is None else str(ref),
                    "memory_needed": need,
                    "design bound": f"= {bound}" if exact else f"<= {bound}",
                }
            )
            name = f"K = {K} {SHORT[agent]} peak memory"
            src = "design bound (docstring)"
            if exact:
                r.check(
                    item, name, _span(lo, hi), f"= {bound} (every seed)", src, lo == hi == bound
                )
            else:
                r.check(
                    item,
                    name,
                    _span(lo, hi),
                    f"= {ref} (occupancy walk, every seed); <= {need} (memory_needed) "
                    f"<= {bound} (design bound)",
                    "authors' tower skeleton; design bound (docstring)",
                    lo == hi == ref and ref <= need <= bound,
                )
    df = pd.DataFrame(rows)
    r.table(
        item,
        "peak_memory",
        df,
        f"**{item}: peak memory** (arms held at once, the arriving arm included; the env's "
        f"`peak_memory`) on clear-cut instances, T = K^3, {seeds} seeds per K, corrected mode. "
        "`memory_needed`: the slots each algorithm asks of the env. Occupancy walk: an "
        "independent plain-Python walk of the authors' tower skeleton, whose peak does not "
        "depend on rewards. `jin (stand-in)` is our reconstructed doubling king/challenger, not "
        "Jin et al.'s Algorithm 1.",
    )


def _span(lo: int, hi: int) -> str:
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def r7(r: Reproduction) -> None:
    """R7: peak memory per algorithm vs its stated bound, K sweep of R4 (module docstring)."""
    memory_item(r, KS[r.quick], rates.SEEDS[r.quick])
