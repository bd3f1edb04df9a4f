"""Multi-level ("tower") streaming eps-best-arm routines of Assadi & Wang (STOC 2020,
arXiv:2004.04666) + commit, as used for regret by Wang (ICML 2023, arXiv:2306.02208, the
O(log* K)-memory O(K^{1/3} T^{2/3}) algorithm, abstract; "Aggressive Selective Promotion").

Instantiated with the constants of the authors' released code (`log_eps_best_algorithm`,
`loglog_eps_best_algorithm`, `logstar_eps_best_algorithm` in `algorithms.py` of
github.com/jhwjhw0123/streaming-regret-minimization-MABs): level l
keeps a king with benchmark stored[l] and a pull counter c[l]; per comparison b[l] pulls; when
c[l] > C[l] the level's king is promoted to level l+1 and the level is cleared.

One outer pass (the skeleton shared by those three routines), walking levels l = 0, 1, ...:
  level l not full:  l = 0: read the next arm (none left -> FINALIZE), pull it b[0] times; it
                     becomes king if the level is empty (stored[0] = max(stored[0], r)) or
                     if r > stored[0];
                     l > 0: pull the promoted arm b[l] times, king if r > stored[l]; with no
                     promoted arm waiting, re-pull the king b[l] times (stored[l] = r).
                     Back to l = 0.
  level l full:      with a promoted arm waiting, pull both b[l] times and promote the better,
                     else
                     promote the king; clear level l; go on to l + 1.
  FINALIZE:          if T - (counted pulls) >= max_level b[0], pull each non-empty level's king b[0]
                     times and select a level, else select max_level; commit the rest to its king.
The top level is never full (the authors' code would index past its last level).

Constants (eps = (K/T)^{1/3}): log: L = int(ln K), b[l] = 1.2^l/eps^2, C = 6 b.  loglog:
L = int(ln ln K) + 1, b[l] = 1.2^l/eps^2 with b[L-1] = ln K/eps^2, C = 10 b, C[L-1] = K b[L-1].
log*: L = 1 + (times ln is applied to K until < 1), r_0 = 2, r_{l+1} = 2^{r_l}, b[0] = 1/eps^2,
b[l] = r_l/eps^2, C[0] = 4/eps^2 = 4 b[0], C[l] = 2^{r_l} b[l] / 2^{r_{l-1}} (overflow: 1e10 b[l]).
Every cap is a whole number m[l] of batches (m = 6; 10 and K; 4, 2^{r_l - r_{l-1}} or 1e10), and
we set C[l] = m[l] b[l] with the integer b[l] actually pulled, in both modes, so that a level
promotes after m[l] + 1 comparisons (log* level 0: 5 arms, log 7, loglog 11) for every (K, T),
as in the authors' code, which keeps b[0] and C[0] = 4 b[0] as floats. (Rounding b[0] = 1/eps^2
and C[0] = 4/eps^2 separately made level 0 of log* full after 4 arms whenever
4 ceil(1/eps^2) > ceil(4/eps^2).) A level whose cap exceeds T never fills (its counter stays
below T while pulls are left); its m[l] is clamped to floor(T / b[l]), which keeps every cap a
whole number of batches, at most T, and so within the platform int (int32 without x64).

Memory: the L kings plus one arriving or promoted arm: L + 1 slots (at most one promoted arm waits
at any time, and none while an arm is arriving).

Modes: ``faithful`` keeps the authors' regret charging (comparison pulls charged at the king's
mean, quirk (a)), their final selection (the last non-empty level whose estimate is > 0, quirk
(b)) and their pull counter that omits re-pulls and promotion pulls (quirk (c)) in the FINALIZE
test; ``corrected`` charges the pulled arm and selects the empirical best. Both keep the stale
benchmark stored[l] across clears (quirk (d)), as the re-runs' "both fixes" column does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bandits.streaming.common import StreamAgent, action, count, eps_of
from bandits.streaming.env import StreamSpec

LEVEL, PROMOTE2, FINAL, COMMIT = 0, 1, 2, 3  # phases


class TowerState(NamedTuple):
    b: jax.Array  # (L,) pulls per comparison
    cap: jax.Array  # (L,) level caps C[l]
    K: jax.Array
    T: jax.Array
    used: jax.Array  # pulls so far (all)
    counted: jax.Array  # pulls the authors' counter sees (faithful FINALIZE test)
    read: jax.Array  # arms read
    king: jax.Array  # (L,) slot of each level's king, -1 empty
    king_pos: jax.Array  # (L,) stream positions
    pend: jax.Array  # (L,) slot of a promoted arm waiting at the level, -1 none
    pend_pos: jax.Array  # (L,)
    stored: jax.Array  # (L,) benchmarks
    c: jax.Array  # (L,) level pull counters
    max_level: jax.Array
    level: jax.Array  # cursor
    phase: jax.Array
    r1: jax.Array  # first result of a two-arm promotion
    stale: jax.Array  # slot discarded by the last update, dropped by the next action
    fin_level: jax.Array  # FINALIZE: level being re-pulled
    best_r: jax.Array
    chosen: jax.Array  # selected level


def _free_slot(s: TowerState, size: int) -> jax.Array:
    slots = jnp.arange(size)
    held = jnp.concatenate([s.king, s.pend])  # -1 (none) matches no slot
    used = jnp.any(held[:, None] == slots, axis=0)
    return jnp.argmax(~used).astype(jnp.int32)


def _set(x: jax.Array, i: jax.Array, v) -> jax.Array:
    """x with entry i replaced by v (0 <= i < len(x)): a select, not a scatter, so that XLA
    fuses it with its neighbours (under vmap a scatter is a kernel of its own)."""
    return jnp.where(jnp.arange(x.shape[0]) == i, v, x).astype(x.dtype)


@dataclass(frozen=True)
class _Tower(StreamAgent):
    mode: str = "corrected"

    def __post_init__(self):
        self._check_mode()

    def levels(self, K: int, T: int) -> tuple[list[float], list[float]]:  # pragma: no cover
        """Real batch sizes b[l] and caps in batches m[l] (C[l] = m[l] b[l], m[l] whole)."""
        raise NotImplementedError

    def memory_needed(self, spec: StreamSpec) -> int:
        return len(self.levels(spec.num_arms, spec.horizon)[0]) + 1

    def constants(self, K: int, T: int) -> tuple[np.ndarray, np.ndarray]:
        """Integer b[l] and C[l] = m[l] b[l] (a whole number of the integer batches)."""
        b, m = self.levels(K, T)
        bi = [min(count(x, self.mode), T) for x in b]
        ci = [_cap(mult, n, T) for mult, n in zip(m, bi, strict=True)]
        return np.array(bi, np.int64), np.array(ci, np.int64)

    def init(self, key, spec) -> TowerState:
        spec = self.check_spec(spec)
        K, T = spec.num_arms, spec.horizon
        b, cap = self.constants(K, T)
        L = len(b)
        it, ft = jnp.result_type(int), jnp.result_type(float)
        z = jnp.zeros((), it)
        i32 = lambda v: jnp.asarray(v, jnp.int32)
        neg = jnp.full((L,), -1, jnp.int32)
        return TowerState(
            jnp.asarray(b, it),
            jnp.asarray(cap, it),
            jnp.asarray(K, it),
            jnp.asarray(T, it),
            z,
            z,
            z,
            neg,
            jnp.zeros((L,), it),
            neg,
            jnp.zeros((L,), it),
            jnp.zeros((L,), ft),
            jnp.zeros((L,), it),
            i32(0),
            i32(0),
            i32(LEVEL),
            jnp.zeros((), ft),
            i32(-1),
            i32(0),
            jnp.zeros((), ft),
            i32(-1),
        )

    # ----------------------------------------------------------------- acting
    def act(self, rng, s: TowerState, obs):
        L = s.b.shape[0]
        M = L + 1
        lv = s.level
        left = s.T - s.used
        full = (s.c[lv] > s.cap[lv]) & (lv < L - 1)
        free = _free_slot(s, M)
        is0 = lv == 0
        # phase LEVEL
        read = jnp.where(is0 & ~full, free, -1)
        pull = jnp.where(is0 & ~full, free, jnp.where(s.pend[lv] >= 0, s.pend[lv], s.king[lv]))
        pull = jnp.where(full, s.king[lv], pull)
        charge = jnp.where(~full & (s.king[lv] >= 0), s.king[lv], pull)
        n = s.b[lv]
        # other phases
        pull = jnp.where(s.phase == PROMOTE2, s.pend[lv], pull)
        pull = jnp.where(s.phase == FINAL, s.king[s.fin_level], pull)
        pull = jnp.where(s.phase == COMMIT, s.king[jnp.clip(s.chosen, 0)], pull)
        n = jnp.where(s.phase == FINAL, s.b[0], n)
        n = jnp.where(s.phase == COMMIT, left, jnp.minimum(n, left))
        read = jnp.where(s.phase == LEVEL, read, -1)
        charge = jnp.where(s.phase == LEVEL, charge, pull)
        return action(drop=s.stale, read=read, pull=pull, n=n, charge=charge)

    # ----------------------------------------------------------------- learning
    def update(self, s: TowerState, obs, a, reward) -> TowerState:
        r = reward / jnp.maximum(a.n, 1).astype(reward.dtype)
        s = s._replace(used=s.used + a.n, stale=jnp.int32(-1))
        keep = lambda s, a, r: (s, jnp.zeros((), bool))
        branches = [self._after_level, self._after_promote2, self._after_final, keep]
        s, walk = jax.lax.switch(s.phase, branches, s, a, r)
        # The level walk (a while loop) is written once, after the branches that ask for it:
        # one copy to compile, and under vmap (every branch runs) one walk per step, not two.
        return jax.lax.cond(walk, self._normalize, lambda s: s, s)

    def _after_level(self, s: TowerState, a, r) -> tuple[TowerState, jax.Array]:
        lv = s.level
        L = s.b.shape[0]
        full = (s.c[lv] > s.cap[lv]) & (lv < L - 1)

        def first_pull_of_promotion(s):
            return s._replace(r1=r, phase=jnp.int32(PROMOTE2))

        def compare(s):
            at = jnp.arange(L) == lv
            if_read = a.read >= 0
            empty = s.king[lv] < 0
            x, xpos = (
                jnp.where(if_read, a.read, s.pend[lv]),
                jnp.where(if_read, s.read, s.pend_pos[lv]),
            )
            # (D) re-pull of a lone king at l > 0: not counted, sets the benchmark
            repull = ~if_read & (s.pend[lv] < 0)
            wins = ~repull & ~empty & (r > s.stored[lv])
            stored = jnp.where(
                repull,
                r,
                jnp.where(empty, jnp.maximum(s.stored[lv], r), jnp.where(wins, r, s.stored[lv])),
            )
            king = jnp.where(empty | wins, x, s.king[lv])
            kpos = jnp.where(empty | wins, xpos, s.king_pos[lv])
            loser = jnp.where(repull | empty, -1, jnp.where(wins, s.king[lv], x))
            add = jnp.where(repull, 0, s.b[lv])
            return s._replace(
                king=jnp.where(at, king, s.king).astype(jnp.int32),
                king_pos=jnp.where(at, kpos, s.king_pos),
                pend=jnp.where(at & ~if_read, -1, s.pend).astype(jnp.int32),
                stored=jnp.where(at, stored, s.stored),
                c=jnp.where(at, s.c + add, s.c),
                counted=s.counted + add,
                read=s.read + if_read.astype(s.read.dtype),
                stale=loser.astype(jnp.int32),
                level=jnp.int32(0),
            )

        s = jax.lax.cond(full, first_pull_of_promotion, compare, s)
        return s, ~full  # walk the levels after a comparison

    def _after_promote2(self, s: TowerState, a, r) -> tuple[TowerState, jax.Array]:
        lv = s.level
        L = s.b.shape[0]
        one_wins = s.r1 > r  # the authors keep the second arm on ties
        win = jnp.where(one_wins, s.king[lv], s.pend[lv])
        wpos = jnp.where(one_wins, s.king_pos[lv], s.pend_pos[lv])
        lose = jnp.where(one_wins, s.pend[lv], s.king[lv])
        s = s._replace(
            king=_set(s.king, lv, -1),
            pend=_set(s.pend, lv, -1),
            c=_set(s.c, lv, 0),
            stale=lose.astype(jnp.int32),
            phase=jnp.int32(LEVEL),
        )
        s = _promote(s, lv, win, wpos)
        s = s._replace(level=jnp.minimum(lv + 1, L - 1).astype(jnp.int32))
        return s, jnp.ones((), bool)  # walk the levels

    def _after_final(self, s: TowerState, a, r) -> tuple[TowerState, jax.Array]:
        L = s.b.shape[0]
        lv = s.fin_level
        # faithful: best_emp_reward is never updated, so the last level with r > 0 wins
        better = r > 0 if self.mode == "faithful" else (r > s.best_r) | (s.chosen < 0)
        s = s._replace(
            chosen=jnp.where(better, lv, s.chosen).astype(jnp.int32),
            best_r=jnp.where(better, r, s.best_r),
        )
        nxt = _next_nonempty(s.king, lv + 1)
        s = s._replace(
            fin_level=jnp.where(nxt < L, nxt, lv).astype(jnp.int32),
            phase=jnp.where(nxt < L, FINAL, COMMIT).astype(jnp.int32),
            chosen=jnp.where((nxt >= L) & (s.chosen < 0), _first_nonempty(s.king), s.chosen).astype(
                jnp.int32
            ),
        )
        return s, jnp.zeros((), bool)

    def _normalize(self, s: TowerState) -> TowerState:
        """Walk levels from the cursor: promote full single-king levels (no pulls), stop at the
        next level needing pulls, or enter FINALIZE when level 0 wants an arm and none is left."""
        L = s.b.shape[0]

        def promotes(s):
            lv = s.level
            full = (s.c[lv] > s.cap[lv]) & (lv < L - 1)
            return (s.phase == LEVEL) & full & (s.pend[lv] < 0)

        def promote_king(s):
            lv = s.level
            win, wpos = s.king[lv], s.king_pos[lv]
            s = s._replace(king=_set(s.king, lv, -1), c=_set(s.c, lv, 0))
            s = _promote(s, lv, win, wpos)
            return s._replace(level=(lv + 1).astype(jnp.int32))

        s = s._replace(max_level=jnp.maximum(s.max_level, s.level))
        s = jax.lax.while_loop(promotes, lambda s: _visit(promote_king(s)), s)
        lv = s.level
        full = (s.c[lv] > s.cap[lv]) & (lv < L - 1)
        done = (lv == 0) & ~full & (s.read >= s.K)
        return jax.lax.cond(done & (s.phase == LEVEL), self._finalize, lambda s: s, s)

    def _finalize(self, s: TowerState) -> TowerState:
        left = jnp.where(self.mode == "faithful", s.T - s.counted, s.T - s.used)
        test = left >= s.max_level.astype(left.dtype) * s.b[0]
        first = _first_nonempty(s.king)
        top = _last_nonempty(s.king, s.max_level)
        return s._replace(
            phase=jnp.where(test, FINAL, COMMIT).astype(jnp.int32),
            fin_level=first,
            chosen=jnp.where(test, -1 if self.mode != "faithful" else first, top).astype(jnp.int32),
            best_r=jnp.zeros_like(s.best_r),
        )

    def output(self, s: TowerState):
        lv = jnp.where(s.chosen >= 0, s.chosen, _last_nonempty(s.king, s.b.shape[0] - 1))
        return jnp.where(s.king[lv] >= 0, s.king_pos[lv], -1)


def _cap(mult: float, b: int, T: int) -> int:
    """C = m b for the whole number of batches m = min(mult, floor(T / b)) (mult a float when
    huge): at most T, so that it fits the platform int (int32 without x64, where T < 2^31).

    The same level test as C = mult b: the counter c is a multiple of b and, while pulls are
    left, at most the pulls made (< T), so c <= floor(T / b) b and c > m b iff c > mult b.
    Without the clamp log*'s C[2] = 4096 b[2] = 65536/eps^2 overflowed int32 once
    T/K > 32768^1.5 (e.g. K = 250, T = 2e9) and level 2 was always full."""
    return min(int(mult), T // b) * b


def _visit(s: TowerState) -> TowerState:
    return s._replace(max_level=jnp.maximum(s.max_level, s.level))


def _promote(s: TowerState, lv, win, wpos) -> TowerState:
    """Append arm `win` to level lv + 1: its king if empty, else its waiting promoted arm."""
    L = s.b.shape[0]
    up = jnp.minimum(lv + 1, L - 1)
    empty = s.king[up] < 0
    return s._replace(
        king=_set(s.king, up, jnp.where(empty, win, s.king[up])),
        king_pos=_set(s.king_pos, up, jnp.where(empty, wpos, s.king_pos[up])),
        pend=_set(s.pend, up, jnp.where(empty, s.pend[up], win)),
        pend_pos=_set(s.pend_pos, up, jnp.where(empty, s.pend_pos[up], wpos)),
    )


def _first_nonempty(king: jax.Array) -> jax.Array:
    return jnp.argmax(king >= 0).astype(jnp.int32)


def _next_nonempty(king: jax.Array, start: jax.Array) -> jax.Array:
    """First level >= start with a king, or L."""
    L = king.shape[0]
    ok = (king >= 0) & (jnp.arange(L) >= start)
    return jnp.where(ok.any(), jnp.argmax(ok), L).astype(jnp.int32)


def _last_nonempty(king: jax.Array, at_most: jax.Array) -> jax.Array:
    """Highest non-empty level <= at_most (0 if none)."""
    L = king.shape[0]
    ok = (king >= 0) & (jnp.arange(L) <= at_most)
    return jnp.where(ok.any(), L - 1 - jnp.argmax(ok[::-1]), 0).astype(jnp.int32)


# --------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class StreamLog(_Tower):
    """O(log K)-memory tower: L = int(ln K), b[l] = 1.2^l/eps^2, C = 6 b (authors'
    `log_eps_best_algorithm`)."""

    def levels(self, K, T):
        e2 = eps_of(K, T) ** 2
        L = max(1, int(math.log(K)))
        b = [math.ceil(1.2**lv / e2 - 1e-9) for lv in range(L)]
        return b, [6.0] * L


@dataclass(frozen=True)
class StreamLogLog(_Tower):
    """O(log log K)-memory tower: L = int(ln ln K) + 1, C = 10 b; last level is the naive
    ln K/eps^2 one, C[L-1] = K b[L-1] (authors' `loglog_eps_best_algorithm`)."""

    def levels(self, K, T):
        e2 = eps_of(K, T) ** 2
        L = max(1, int(math.log(math.log(K))) + 1) if K > 2 else 1
        b = [math.ceil(1.2**lv / e2 - 1e-9) for lv in range(L - 1)] + [math.log(K) / e2]
        return b, [10.0] * (L - 1) + [float(K)]


@dataclass(frozen=True)
class StreamLogStar(_Tower):
    """O(log* K)-memory tower (Aggressive Selective Promotion instantiation): r_0 = 2,
    r_{l+1} = 2^{r_l}, b[l] = r_l/eps^2 (b[0] = 1/eps^2), C[0] = 4 b[0],
    C[l] = 2^{r_l} b[l] / 2^{r_{l-1}} = 2^{r_l - r_{l-1}} b[l], 1e10 b[l] when 2^{r_l} overflows
    a float (authors' `logstar_eps_best_algorithm`)."""

    def levels(self, K, T):
        e2 = eps_of(K, T) ** 2
        L, x = 1, float(K)
        while x >= 1:
            L, x = L + 1, math.log(x)
        r = [2]
        for _ in range(L - 1):
            r.append(2 ** r[-1] if r[-1] < 64 else math.inf)
        b = [1.0 / e2] + [math.ceil(min(rl / e2, 1e20)) for rl in r[1:]]
        return b, [4.0] + [_logstar_multiple(r[lv - 1], r[lv]) for lv in range(1, L)]


def _logstar_multiple(r_prev: float, r: float) -> float:
    """2^r / 2^r_prev = 2^{r - r_prev}, or 1e10 where 2^r overflows a float (r >= 1024; the
    authors' fallback)."""
    return 2.0 ** (r - r_prev) if r < 1024 else 1e10
