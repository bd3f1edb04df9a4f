"""Game-of-Arms: the single-extra-arm king/challenger eps-best routine of Assadi & Wang (STOC 2020,
arXiv:2004.04666, "stores a single extra coin"), with a fractional-stream fallback, + commit, as run
in Wang (ICML 2023, arXiv:2306.02208) experiments (`Game_of_Arms_regret_min` in `algorithms.py`
of the authors' released code, github.com/jhwjhw0123/streaming-regret-minimization-MABs).

With eps = (K/T)^{1/3}: king budget B0 = 1.2/eps^2, +1/eps^2 per arriving arm; L = int(10 ln ln K)
challenge levels. An arriving arm x is tested at levels l = 0, 1, ...: if the budget cannot pay
n_l = 2^l/eps^2, x dethrones the king: x is pulled B0 times and becomes king whatever its mean r
on those pulls (as in the authors' code: the dethrone pulls only set the new king's estimate),
and the budget resets to B0. Otherwise x is pulled n_l times (budget -= n_l) and discarded once
its mean r <= king_est - eps/5. The full stream stops after 10 K/eps^2 pulls. Fractional stream:
each arm after the first is, with probability 1.5/ln K, pulled ln K/eps^2 times and kept as the
fallback arm if its mean is the best so far (the naive algorithm on a subsample). Commit to the
king, or to the fallback arm when the full stream ran out. Memory: king + fallback arm + arriving
arm = 3 slots.

First king's estimate: ``faithful``: king_est = eps/2 (the authors' initial value; the first
arm's ln K/eps^2 fractional-stream pulls do not set it), so the second arm clears level 0 unless
its mean is <= eps/2 - eps/5, cannot pay level 1 (budget 2.2/eps^2 - 1/eps^2 < 2/eps^2) and is
crowned whatever the first arm's mean (means [0.6, 0.4]: GoA commits to 0.4); ``corrected``:
king_est = min(r, 1) with r the first arm's mean on those pulls (as the corrected uniform and
naive algorithms benchmark against the first arm's estimate).

New king's estimate: ``faithful``: min(max(r, king_est + Delta/2), 1) with the TRUE gap Delta
between the best and second-best means (the authors' oracle); ``corrected``: min(r, 1), the new
king's own estimate (no oracle). An arm passing all L levels (the authors raise an error) becomes
king.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from bandits.streaming.common import StreamAgent, action, count, eps_of
from bandits.streaming.env import StreamSpec
from experiments import threefry as bits

FIRST, ARRIVE, CHALLENGE, FRAC, COMMIT = 0, 1, 2, 3, 4


class GoAState(NamedTuple):
    key: jax.Array  # fractional-stream coin flips: uniform(fold_in(key, stream position))
    K: jax.Array
    T: jax.Array
    L: jax.Array  # challenge levels int(10 ln ln K)
    eps: jax.Array
    n0: jax.Array  # 1/eps^2 (level l tests n0 2^l pulls)
    B0: jax.Array  # initial king budget
    inc: jax.Array  # budget added per arriving arm
    frac_n: jax.Array  # ln K / eps^2
    full_cap: jax.Array  # 10 K / eps^2
    used: jax.Array
    full: jax.Array  # full-stream pulls
    read: jax.Array
    budget: jax.Array
    king_est: jax.Array
    king: jax.Array  # slot
    king_pos: jax.Array
    frac: jax.Array  # fallback slot
    frac_pos: jax.Array
    frac_best: jax.Array
    x: jax.Array  # slot of the arriving arm
    x_pos: jax.Array
    ell: jax.Array  # current challenge level
    phase: jax.Array
    stale: jax.Array  # slot to drop next


def _where(c, a: GoAState, b: GoAState) -> GoAState:
    return jax.tree.map(lambda p, q: jnp.where(c, p, q), a, b)


@dataclass(frozen=True)
class GameOfArms(StreamAgent):
    """Game-of-Arms with the fractional-stream fallback (see module docstring)."""

    mode: str = "corrected"

    def __post_init__(self):
        self._check_mode()

    def memory_needed(self, spec: StreamSpec) -> int:
        return 3

    def init(self, key, spec) -> GoAState:
        spec = self.check_spec(spec)
        K, T = spec.num_arms, spec.horizon
        e = eps_of(K, T)
        it, ft = jnp.result_type(int), jnp.result_type(float)
        c = lambda x: jnp.asarray(min(count(x, self.mode), T), it)
        L = max(1, int(10 * math.log(math.log(K)))) if K > 2 else 1
        z, zf = jnp.zeros((), it), jnp.zeros((), ft)
        i32 = lambda v: jnp.asarray(v, jnp.int32)
        return GoAState(
            key,
            jnp.asarray(K, it),
            jnp.asarray(T, it),
            jnp.asarray(L, it),
            jnp.asarray(e, ft),
            c(1 / e**2),
            c(1.2 / e**2),
            c(1 / e**2),
            c(math.log(K) / e**2),
            # full <= used <= T: a cap above T never binds; clamped so that it fits the
            # platform int (int32 without x64, where T < 2^31)
            jnp.asarray(min(int(10 * K / e**2), T), it),
            z,
            z,
            z,
            z,
            jnp.asarray(e / 2, ft),
            i32(0),
            z,
            i32(0),
            z,
            zf,
            i32(0),
            z,
            z,
            i32(FIRST),
            i32(-1),
        )

    # ----------------------------------------------------------------- helpers
    def _frac_sel(self, s: GoAState, pos: jax.Array) -> jax.Array:
        """Is the arm at stream position `pos` in the fractional stream (prob. 1.5/ln K)?"""
        u = bits.uniform(bits.fold_in(bits.key_data(s.key), pos), (), s.eps.dtype)
        return u < 1.5 / jnp.log(s.K.astype(s.eps.dtype))

    def _dethrone(self, s: GoAState) -> jax.Array:
        return (s.budget < s.n0 * 2**s.ell) | (s.ell >= s.L)

    def act(self, rng, s: GoAState, obs):
        left = s.T - s.used
        idx = jnp.arange(3)
        free = jnp.argmax((idx != s.king) & (idx != s.frac)).astype(jnp.int32)
        in_full = s.full <= s.full_cap
        n_chal = jnp.where(self._dethrone(s), s.B0, s.n0 * 2**s.ell)
        sel = self._frac_sel(s, s.read)
        arrive_n = jnp.where(in_full, n_chal, jnp.where(sel, s.frac_n, 0))
        read = jnp.where(s.phase == FIRST, 0, jnp.where(s.phase == ARRIVE, free, -1))
        pull = jnp.select(
            [s.phase == FIRST, s.phase == ARRIVE, s.phase == COMMIT],
            [jnp.int32(0), free, jnp.where(in_full, s.king, s.frac)],
            s.x,
        )
        n = jnp.select(
            [s.phase == FIRST, s.phase == ARRIVE, s.phase == CHALLENGE, s.phase == FRAC],
            [s.frac_n, arrive_n, n_chal, s.frac_n],
            left,
        )
        return action(drop=s.stale, read=read, pull=pull, n=jnp.minimum(n, left))

    # ----------------------------------------------------------------- learning
    def update(self, s: GoAState, obs, a, reward) -> GoAState:
        r = reward / jnp.maximum(a.n, 1).astype(reward.dtype)
        s = s._replace(used=s.used + a.n, stale=jnp.int32(-1))
        # An arriving arm is read into x, then tested (full stream), pulled as a fractional-stream
        # arm (past the cap, n > 0) or discarded: those are the routines of the later phases, so
        # the arrival is routed to them (each written once: under vmap every branch runs, and
        # each copy is code to compile). Branch ARRIVE itself is the discard.
        arriving = s.phase == ARRIVE
        s = _where(arriving, s._replace(x=a.read, x_pos=s.read, read=s.read + 1), s)
        in_full = s.full <= s.full_cap
        routed = jnp.where(in_full, CHALLENGE, jnp.where(a.n > 0, FRAC, ARRIVE))
        branches = [
            lambda s: self._after_first(s, r),
            self._discard_x,
            lambda s: self._after_challenge(s, a, r, obs),
            lambda s: self._after_frac(s, r),
            lambda s: s,
        ]
        return jax.lax.switch(jnp.where(arriving, routed, s.phase), branches, s)

    def _after_first(self, s: GoAState, r) -> GoAState:
        # faithful: the authors' king_est = eps/2 stays; corrected: the first arm's estimate
        est = s.king_est if self.mode == "faithful" else jnp.minimum(r, 1.0)
        s = s._replace(
            king=jnp.int32(0),
            frac=jnp.int32(0),
            frac_best=r,
            read=s.read + 1,
            budget=s.B0,
            king_est=jnp.asarray(est, s.king_est.dtype),
        )
        return self._next_arm(s)

    def _after_challenge(self, s: GoAState, a, r, obs) -> GoAState:
        if self.mode == "faithful":  # the authors' Delta oracle
            new_est = jnp.minimum(jnp.maximum(r, s.king_est + obs.oracle_gap / 2), 1.0)
        else:
            new_est = jnp.minimum(r, 1.0)
        crowned = s._replace(
            stale=jnp.where(s.king != s.frac, s.king, -1).astype(jnp.int32),
            king=s.x,
            king_pos=s.x_pos,
            budget=s.B0,
            king_est=new_est,
            full=s.full + a.n,
        )
        tested = s._replace(full=s.full + a.n, budget=s.budget - a.n)
        dethrone = self._dethrone(s)
        out = ~dethrone & (r <= s.king_est - s.eps / 5)  # a dethrone crowns x whatever r is
        up = tested._replace(ell=tested.ell + 1, phase=jnp.int32(CHALLENGE))
        after = self._leave_full(_where(dethrone, crowned, tested))
        return _where(dethrone | out, after, up)

    def _leave_full(self, s: GoAState) -> GoAState:
        """x leaves the full stream: on to its fractional-stream pull, or discarded."""
        return _where(
            self._frac_sel(s, s.x_pos), s._replace(phase=jnp.int32(FRAC)), self._discard_x(s)
        )

    def _after_frac(self, s: GoAState, r) -> GoAState:
        better = r > s.frac_best
        old_free = better & (s.frac != s.king)
        keep_x = better | (s.x == s.king)
        stale = jnp.where(old_free, s.frac, jnp.where(keep_x, s.stale, s.x))
        s = s._replace(
            frac_best=jnp.where(better, r, s.frac_best),
            frac=jnp.where(better, s.x, s.frac).astype(jnp.int32),
            frac_pos=jnp.where(better, s.x_pos, s.frac_pos),
            stale=stale.astype(jnp.int32),
        )
        return self._next_arm(s)

    def _discard_x(self, s: GoAState) -> GoAState:
        keep = (s.x == s.king) | (s.x == s.frac)
        return self._next_arm(s._replace(stale=jnp.where(keep, s.stale, s.x).astype(jnp.int32)))

    def _next_arm(self, s: GoAState) -> GoAState:
        more = s.read < s.K
        in_full = s.full <= s.full_cap
        return s._replace(
            phase=jnp.where(more, ARRIVE, COMMIT).astype(jnp.int32),
            budget=jnp.where(more & in_full, s.budget + s.inc, s.budget),
            ell=jnp.zeros_like(s.ell),
        )

    def output(self, s: GoAState):
        return jnp.where(s.full <= s.full_cap, s.king_pos, s.frac_pos)
