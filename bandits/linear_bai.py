"""Fixed-budget best-arm identification in linear bandits (final-answer shape).

Model (Soare, Lazaric & Munos, "Best-Arm Identification in Linear Bandits", NeurIPS 2014, §2;
Yang & Tan, "Minimax Optimal Fixed-Budget Best Arm Identification in Linear Bandits", NeurIPS
2022, §2; Chen, Karthik, Chee & Tan, "Fixed-Budget Differentially Private Best Arm
Identification", ICLR 2024, §2): K arms with public features a_1, ..., a_K in R^d, an unknown
θ in R^d, arm i's rewards i.i.d. in [0, 1] with mean μ_i = <a_i, θ> (Bernoulli(μ_i) here), a
budget of T pulls (the run's ``horizon``). The learner recommends one arm at the end and is
judged on it only: ``error`` = 1[recommended arm != argmax μ] (an indicator: exact
Clopper-Pearson interval, log scale) and ``simple_regret`` = μ* - μ_recommended.

Potential-reward table. The rewards are the K x T table X with X[i, t] the reward arm i would
give if pulled in round t (0-based); pulling arm i in round t reveals X[i, t] and nothing else.
`LinearBAI` samples X[i, t] ~ Bernoulli(μ_i) lazily (one engine uniform per round, or a
Binomial(n, μ_i) sum for an n-round `Pull`, which is the sum of the n fresh entries
X[i, t..t+n-1] in distribution; `binomial`; a `PullAll` draws one such sum per arm);
`TableLinearBAI` reads an explicit table (tests, audits).

Binomial sums (`binomial`, exact, made for `vmap`). With q = min(p, 1 - p) (for p > 1/2 the
sample is n minus a Binomial(n, 1 - p) sample), three branches, each run only in steps where
some lane of the vmapped batch needs it (`experiments.batched_cond`; a plain vmapped branch
would run every method for every lane, as `jax.random.binomial` does):

* n <= 1: Bernoulli, 1[u < q] with the step's first pre-drawn uniform u (a multi-round agent's
  one-round steps, e.g. after its budget is spent);
* n q < 10: inversion of u on a table of the first J terms of the pmf (f(0) = (1 - q)^n,
  f(k+1) = f(k) (n - k)/(k + 1) q/(1 - q), cumulative product and sum): k = #{j < J : F(j) <
  u F(J - 1)}. J = 40 in float32, 52 in float64: the mass beyond J - 1 is at most that of
  Poisson(10), 7e-13 (J = 40) and 7e-21 (J = 52), far below the spacing of the uniforms
  (2^-23, 2^-52), so no representable u falls beyond the table; normalising by F(J - 1) only
  keeps a u within rounding of 1 inside it. The law is the inversion of u, exact up to the
  rounding of F;
* n q >= 10: BTRS (Hörmann, "The generation of binomial random variates", J. Stat. Comput.
  Simul. 46 (1993), algorithm BTRS, steps 0-3.4, log f in Loader's form from
  `bandits.streaming.sampling.log_pmf`): `CANDIDATES` = 6 pre-drawn candidate pairs tested at
  once, the first accepted one taken (acceptance >= 0.74 per candidate, 0.885 at large n q);
  where all six fail (probability <= 3e-4, 2e-6 at large n q) BTRS continues on fresh
  candidates from the step's key (the draws and tests of `bandits.streaming.sampling.binomial`,
  written as one loop with one acceptance test: `_btrs_fallback`), for those lanes only
  (`cond_lanes`). Candidates are i.i.d. and the first accepted one is returned: exact whatever
  the count.

Differential privacy is stated for this table: neighbours differ in one entry (the relation of
Chen et al.), or, as a stress test, in one column (a whole round).

Interface (the contract every fixed-budget agent codes against):

* action: an arm index (int32, one round), or ``bandits.envs.Pull(arm, n)``: n rounds of one
  arm in one step, whose feedback is the sum of the n rewards; the step reports ``rounds = n``,
  so a phase of a fixed-budget algorithm is a few steps instead of T. A step that runs past the
  budget, an arm outside [0, K) or n < 1 is illegal;
* or `PullAll(counts)`: every arm i pulled counts[i] >= 0 times in one step (a whole phase),
  whose feedback is the (K,) vector of per-arm reward sums and which reports
  ``rounds = Σ counts``. Its rounds are those of the sequential schedule ``Pull(0, counts[0]),
  Pull(1, counts[1]), ...`` (arms in index order, arm i's counts[i] rounds back to back from
  round t + Σ_{j<i} counts[j]): it reveals exactly the table entries that schedule reveals,
  each sum of entries to the arm's own entry of the feedback (the privacy argument of
  `privacy.fixed_budget` is stated for those entries). ``PullAll(counts, slots)`` promises at
  most `slots` nonzero counts (static), so the sampler draws that many sums. A negative count,
  Σ counts < 1, more nonzero counts than `slots` or a step past the budget is illegal;
* observation: the number of rounds used so far (``t``);
* ``env.spec(params, horizon)`` -> `LinearBAISpec`: the public features (``spec.features``, a
  read-only (K, d) float64 array, static at trace time), ``spec.horizon`` = T, ``num_arms``,
  ``reward_range`` = (0, 1) and ``reward_grid``: k when every reward is a multiple of 2^-k
  (`LinearBAI`: 0, Bernoulli rewards, every reward sum an integer; `TableLinearBAI`: the grid
  it declares and checks its table against, None when undeclared), for the secure noise
  of the private agents, which releases reward sums on a grid 2^-k exactly;
* `instance_arrays(env)` -> (features (K, d), θ (d,), means (K,)) as float64 NumPy arrays.

Instances (``instance``):

* ``soare``: d = 4, K = 5, a_i = e_i (i <= 4), a_5 = cos ω e_1 + sin ω e_2, θ = 0.9 e_1, so
  μ = (0.9, 0, 0, 0, 0.9 cos ω) (the shape of Soare et al. 2014's experiment, recalled;
  means scaled into [0, 1]);
* ``od_linbai``: the instance of Yang & Tan 2022, §5.1: in R^2, θ = (1, 0), arm (1, 0), K - 2
  arms at angle π/4 + φ_i (φ_i ~ N(0, phi_sd^2), seeded by ``instance_seed``), one arm at 3π/4;
* ``sphere``: K directions uniform on the unit sphere of R^d (seeded), θ = (1 - α) x + α y for
  the two closest arms x, y (x is then the best arm for α < 1/2);
* ``custom``: explicit ``features`` (K rows of d numbers) and ``theta`` (d numbers).

Lifting (``od_linbai`` and ``sphere``): <a, θ> lies in [-1, 1] there, so each feature becomes
(a, 1) and θ becomes (θ/2, 1/2): μ_i = (1 + <a_i, θ>)/2 in [0, 1], the same ordering and gaps
halved; the lifted dimension is d + 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bandits.envs import Pull, check_exact_horizon
from bandits.streaming import sampling
from experiments import threefry as bits
from experiments.batched_cond import cond_any, cond_lanes
from experiments.config import ConfigError, check_choice, check_float, check_int
from experiments.dyadic import MAX_GRID_K, grid_exponent
from experiments.protocol import (
    FINAL,
    INDICATOR,
    KEY,
    NONNEGATIVE,
    UNIFORM,
    Draw,
    EnvBase,
    MetricInfo,
)

INSTANCES = ("soare", "od_linbai", "sphere", "custom")
RANK_TOL = 1e-9  # relative singular-value threshold of the rank checks (float64)
MIN_GAP = 1e-6  # the best arm must beat the second by this much (float32 means stay ordered)
CANDIDATES = 6  # BTRS candidate pairs pre-drawn per n-round step (`binomial`)
PHASE_CANDIDATES = 3  # BTRS candidate pairs per sum of a `PullAll`, drawn in the step
SLOT_BLOCK = 4  # a `PullAll`'s first max(SLOT_BLOCK, ⌈slots/4⌉) sums always drawn, the rest
# as one block only in steps where some lane uses it (`LinearBAI._sums`)
INVERSION_TERMS = {4: 40, 8: 52}  # J by float size in bytes (`binomial`)


@dataclass(frozen=True)
class PullAll:
    """Pull every arm i `counts[i]` times in one step ((K,) ints >= 0, Σ >= 1); the feedback
    is the (K,) vector of per-arm reward sums, the step uses Σ counts rounds, read arm after
    arm in index order (module docstring, "Interface").

    `slots` (static, optional): at most this many counts are nonzero (more is illegal), so the
    Bernoulli env draws `slots` Binomial sums instead of K (e.g. d of K = 64 arms for DP-BAI).
    A pytree: `counts` is its leaf, `slots` its static part."""

    counts: jax.Array
    slots: int | None = None


jax.tree_util.register_dataclass(PullAll, data_fields=["counts"], meta_fields=["slots"])


class LinearBAISpec(NamedTuple):
    """What a fixed-budget agent may know before it starts (static and hashable).

    `feature_rows`: the public features as a tuple of K tuples of d floats; use `features`.
    `reward_grid`: every reward (and every sum of rewards) is a multiple of 2^-reward_grid
    (0: integers, Bernoulli rewards); None when the rewards lie on no known grid.
    """

    feature_rows: tuple[tuple[float, ...], ...]
    horizon: int
    reward_range: tuple[float, float] = (0.0, 1.0)
    reward_grid: int | None = 0

    @property
    def features(self) -> np.ndarray:
        """The (K, d) features as a read-only float64 array."""
        a = np.asarray(self.feature_rows, np.float64)
        a.setflags(write=False)
        return a

    @property
    def num_arms(self) -> int:
        return len(self.feature_rows)

    @property
    def dim(self) -> int:
        return len(self.feature_rows[0])


class LinearBAIParams(NamedTuple):
    means: jax.Array  # (K,) μ_i = <a_i, θ>


class LinearBAIState(NamedTuple):
    t: jax.Array  # rounds used so far


@dataclass(frozen=True)
class LinearBAI(EnvBase):
    """K arms with public features, Bernoulli(<a_i, θ>) rewards, a budget of T pulls.

    Build it with `linear_bai` (the Hydra target), which makes the instance's features and θ.
    """

    features: tuple[tuple[float, ...], ...]
    theta: tuple[float, ...]
    instance: str = "custom"
    primary_metric: ClassVar[str] = "error"
    x_label: ClassVar[str] = "round t"
    reward_range: ClassVar[tuple[float, float]] = (0.0, 1.0)

    def __post_init__(self):
        validate(self.features, self.theta)

    @property
    def num_arms(self) -> int:
        return len(self.features)

    def metric_info(self) -> dict[str, MetricInfo]:
        return {
            "error": MetricInfo(
                label="error probability", kind=FINAL, scale="log", support=INDICATOR
            ),
            "simple_regret": MetricInfo(label="simple regret", kind=FINAL, support=NONNEGATIVE),
        }

    def default_params(self) -> LinearBAIParams:
        _, _, means = instance_arrays(self)
        return LinearBAIParams(jnp.asarray(means, jnp.result_type(float)))

    def spec(self, params, horizon: int) -> LinearBAISpec:
        check_exact_horizon(int(horizon))
        return LinearBAISpec(self.features, int(horizon), self.reward_range, 0)

    def randomness(self, params, action) -> dict[str, Draw]:
        if isinstance(action, PullAll):  # K sums: their uniforms come from the key (`_sums`)
            return {"key": Draw(KEY)}
        if isinstance(action, Pull):
            return {"u": Draw(UNIFORM, (CANDIDATES, 2)), "key": Draw(KEY)}
        return {"u": Draw(UNIFORM)}

    def init(self, key: jax.Array, params) -> LinearBAIState:
        return LinearBAIState(jnp.zeros((), jnp.result_type(int)))

    def observe(self, state: LinearBAIState, params) -> jax.Array:
        return state.t

    def _reward(self, rng, state, arm, n, params):
        mu = params.means[jnp.clip(arm, 0, self.num_arms - 1)]
        if "key" in rng:
            return binomial(rng["u"], rng["key"], n, mu)
        return (rng["u"] < mu).astype(mu.dtype)

    def _sums(self, rng, counts: jax.Array, slots: int, params) -> jax.Array:
        """Per arm a Binomial(counts[i], μ_i) sum (`binomial`): the arms with counts > 0 put
        in `slots` slots (the first ones in index order; `PullAll.slots`), one sum per slot,
        from the step's key ((slots, PHASE_CANDIDATES, 2) uniforms and a fallback key per
        slot). Pre-drawn uniforms would cost that many numbers in every step of the engine's
        chunk, for the handful of steps (one per phase) that use them. 3 candidate pairs
        instead of 6: all rejected with probability <= 0.26^3 = 0.018 (0.0015 at large n q),
        and those few sums continue on fresh candidates (`binomial`; exact whatever the
        number of candidates). The slots' uniforms and keys are drawn in two blocks, each from its
        own key ``fold_in(key, block)`` (`_block_draws`): the first max(`SLOT_BLOCK`, ⌈slots/4⌉)
        always, the others only in steps where some lane of the vmapped batch uses one of them
        (`experiments.batched_cond.cond_any`; zeros otherwise), so a phase that pulls fewer arms
        than `slots` (DP-BAI's later phases, the unused budget's one arm) draws fewer numbers.
        The sums are then drawn by one vmapped `binomial` over all slots: one copy of the
        sampler to compile (a sampler per block cost ~6 CPU s of compile each); an unused slot
        has count 0, a Bernoulli-branch zero that adds no branch work. Same draws, same sums
        as a sampler per block (bit for bit, checked 2026-12-04)."""
        k = self.num_arms
        mu = params.means
        if slots < k:
            idx = jnp.nonzero(counts > 0, size=slots, fill_value=0)[0]
            valid = jnp.arange(slots) < jnp.sum(counts > 0)
            c, m = jnp.where(valid, counts[idx], 0), mu[idx]
        else:
            idx, valid, c, m = jnp.arange(k), jnp.ones((k,), bool), counts, mu
        s = idx.shape[0]
        us, keys = [], []
        first = min(s, max(SLOT_BLOCK, -(-s // 4)))
        for b, (lo, hi) in enumerate(((0, first), (first, s))):
            if lo == hi:
                continue
            key = jax.random.fold_in(rng["key"], b)
            static = (hi - lo, jnp.dtype(mu.dtype).name)
            if lo == 0:  # Σ counts >= 1: the first slot is always in use
                u, fb = _block_draws(key, *static)
            else:  # drawn only in steps where some lane of the batch uses a slot of the block
                shapes = jax.eval_shape(lambda k, st=static: _block_draws(k, *st), key)
                zero = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)
                u, fb = cond_any(_block_draws, *static)(jnp.any(valid[lo:hi]), key, zero)
            us.append(u)
            keys.append(fb)
        # one sampler over all slots (one copy to compile); an unused slot has count 0 (a
        # Bernoulli-branch zero), so it adds no branch work
        sums = jax.vmap(binomial)(jnp.concatenate(us), jnp.concatenate(keys), c, m)
        return jnp.zeros_like(mu).at[idx].add(jnp.where(valid, sums, 0.0))

    def step(self, rng: Mapping[str, jax.Array], state, action, params):
        if isinstance(action, PullAll):
            counts, n, slots, bad = _counts_n(action, self.num_arms, state.t.dtype)
            sums = self._sums(rng, jnp.maximum(counts, 0), slots, params)
            return state._replace(t=state.t + n), sums, {"illegal": bad, "rounds": n}
        arm, n = _arm_n(action, state.t.dtype)
        reward = self._reward(rng, state, arm, n, params)
        metrics = {"illegal": (arm < 0) | (arm >= self.num_arms) | (n < 1)}
        if isinstance(action, Pull):
            metrics["rounds"] = n
        return state._replace(t=state.t + n), reward, metrics

    def final_metrics(self, state, output, params) -> dict[str, jax.Array]:
        if isinstance(output, tuple) and not output:
            raise ConfigError("env: fixed-budget BAI needs an agent whose output() is an arm")
        arm = jnp.asarray(output)
        best = jnp.argmax(params.means)
        return {
            "error": (arm != best).astype(params.means.dtype),
            "simple_regret": params.means[best] - params.means[arm],
        }


def _block_draws(key: jax.Array, size: int, dtype: str) -> tuple[jax.Array, jax.Array]:
    """The draws of a block of `size` `PullAll` slots from its key (`LinearBAI._sums`): the
    (size, PHASE_CANDIDATES, 2) BTRS candidate uniforms (also the Bernoulli / inversion uniform,
    ``u[:, 0, 0]``) and one fallback key per slot."""
    k_u, k_b = jax.random.split(key)
    u = jax.random.uniform(k_u, (size, PHASE_CANDIDATES, 2), jnp.dtype(dtype))
    return u, jax.random.split(k_b, size)


def binomial(u: jax.Array, key: jax.Array, n: jax.Array, p: jax.Array) -> jax.Array:
    """One exact Binomial(n, p) sample as a float of p's dtype (module docstring, "Binomial
    sums"). u: (CANDIDATES, 2) pre-drawn U[0, 1); key: for BTRS's rare fallback; n >= 0 an
    integer (any dtype); p in [0, 1]. jit/vmap-able."""
    dt = p.dtype
    u = u.astype(dt)
    nf = jnp.asarray(n).astype(dt)
    p = jnp.clip(p, 0.0, 1.0)
    flip = p > 0.5
    q = jnp.where(flip, 1.0 - p, p)
    bern = nf <= 1.0
    big = ~bern & (nf * q >= sampling.BTRS_MIN_MEAN)
    small = ~bern & ~big & (q > 0)
    k = jnp.where(bern, (u[0, 0] < q).astype(dt) * jnp.maximum(nf, 0.0), 0.0)
    k = cond_any(_inversion, INVERSION_TERMS[jnp.dtype(dt).itemsize])(small, (u[0, 0], nf, q), k)
    k, ok = cond_any(_btrs_candidates)(big, (u, nf, q), (k, jnp.ones((), bool)))
    k = cond_lanes(_btrs_fallback)(big & ~ok, (key, nf, q), k)
    return jnp.where(flip, nf - k, k)


def _inversion(inputs, terms: int) -> jax.Array:
    """Inversion of u on the table of the first `terms` pmf terms, F normalised (docstring)."""
    u0, nf, q = inputs
    j = jnp.arange(terms - 1, dtype=q.dtype)
    ratio = jnp.maximum(nf - j, 0.0) / (j + 1.0) * (q / (1.0 - q))
    f0 = jnp.exp(nf * jnp.log1p(-q))
    cdf = jnp.cumsum(f0 * jnp.concatenate([jnp.ones((1,), q.dtype), jnp.cumprod(ratio)]))
    return jnp.minimum(jnp.sum(cdf < u0 * cdf[-1]).astype(q.dtype), nf)


def _btrs_candidates(inputs) -> tuple[jax.Array, jax.Array]:
    """(first accepted candidate, whether any was accepted) of BTRS from the pre-drawn pairs
    (Hörmann 1993, steps 0-3.4: `bandits.streaming.sampling.btrs_hat` and `btrs_accept`)."""
    u, n, q = inputs
    k, ok = sampling.btrs_accept(sampling.btrs_hat(n, q), u[:, 0], u[:, 1])
    return k[jnp.argmax(ok)], ok.any()


def _btrs_fallback(inputs) -> jax.Array:
    """All pre-drawn candidates rejected: BTRS continued on fresh candidates from the step's key,
    for a lane with n q >= 10 (q <= 1/2). The draws and tests of
    ``bandits.streaming.sampling.binomial(uniform(k1, (CANDIDATES, 2)), k2, n, q)`` on such a
    lane (its `_search`: the pairs from k1, then ``fold_in(k2, i)``, i = 1, 2, ..., until one is
    accepted; Hörmann 1993, BTRS), written as one loop with one acceptance test in its body: its
    inversion branch (never taken here) and its separate first test are not compiled."""
    key, n, q = inputs
    k1, k2 = jax.random.split(key)
    first = jax.random.uniform(k1, (CANDIDATES, 2), q.dtype)
    kd = bits.key_data(k2)
    hat = sampling.btrs_hat(n, q)

    def body(c):
        i, _, _ = c
        u = jnp.where(i == 0, first, bits.uniform(bits.fold_in(kd, i), first.shape, q.dtype))
        ks, ok = sampling.btrs_accept(hat, u[:, 0], u[:, 1])
        return i + 1, ks[jnp.argmax(ok)], ok.any()

    init = (jnp.zeros((), jnp.uint32), jnp.zeros((), q.dtype), jnp.zeros((), bool))
    return jax.lax.while_loop(lambda c: ~c[2], body, init)[1]


def _counts_n(action: PullAll, num_arms: int, dtype):
    """(counts (K,), Σ counts, slots, illegal) of a `PullAll`, counts in the rounds' integer
    dtype; illegal: a negative count, Σ < 1, or more nonzero counts than `slots`."""
    counts = jnp.asarray(action.counts).astype(dtype)
    if counts.shape != (num_arms,):
        raise ValueError(f"PullAll: counts must have shape (K={num_arms},) (got {counts.shape})")
    slots = num_arms if action.slots is None else int(action.slots)
    if slots < 1:
        raise ValueError(f"PullAll: slots must be >= 1 (got {action.slots!r})")
    n = jnp.sum(counts)
    bad = jnp.any(counts < 0) | (n < 1) | (jnp.sum(counts != 0) > slots)
    return counts, n, min(slots, num_arms), bad


def _arm_n(action, dtype) -> tuple[jax.Array, jax.Array]:
    if isinstance(action, Pull):
        return jnp.asarray(action.arm), jnp.asarray(action.n).astype(dtype)
    return jnp.asarray(action), jnp.ones((), dtype)


class TableParams(NamedTuple):
    means: jax.Array  # (K,) for the final metrics
    cumulative: jax.Array  # (K, T + 1) prefix sums of the table along rounds (exact for bits)


class TableState(NamedTuple):
    t: jax.Array
    reads: jax.Array  # (K, T) times each entry was revealed (only with track_reads)


@dataclass(frozen=True)
class TableLinearBAI(LinearBAI):
    """`LinearBAI` whose rewards are read from an explicit K x T table (`table_params`).

    A pull of arm i for n rounds from round t returns X[i, t] + ... + X[i, t + n - 1]. With
    ``track_reads`` the state counts how often each entry was revealed (the data path of the
    privacy tests: every entry at most once). ``reward_grid`` k: every entry is a multiple of
    2^-k (0: a table of bits or integers, as Bernoulli rewards), checked by `table_params` and
    reported in the spec; None (default): not declared, any values in [0, 1], no known grid.
    """

    track_reads: bool = False
    reward_grid: int | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.reward_grid is not None:
            check_int("reward_grid", self.reward_grid, 0, MAX_GRID_K)

    def spec(self, params, horizon: int) -> LinearBAISpec:
        check_exact_horizon(int(horizon))
        return LinearBAISpec(self.features, int(horizon), self.reward_range, self.reward_grid)

    def table_params(self, table) -> TableParams:
        """Params for the table X (K, T) with entries in [0, 1] (integers keep sums exact)."""
        x = np.asarray(table, np.float64)
        if x.ndim != 2 or x.shape[0] != self.num_arms:
            raise ConfigError(f"table: must have shape (K={self.num_arms}, T) (got {x.shape})")
        if not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1:
            raise ConfigError("table: entries must be finite numbers in [0, 1]")
        if self.reward_grid is not None:
            check_table_grid(x, self.reward_grid)
        cum = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x, 1)], 1)
        dt = jnp.result_type(float)
        return TableParams(jnp.asarray(instance_arrays(self)[2], dt), jnp.asarray(cum, dt))

    def default_params(self) -> TableParams:
        raise ConfigError("env: a TableLinearBAI takes its params from table_params(table)")

    def randomness(self, params, action) -> dict[str, Draw]:
        return {}

    def init(self, key: jax.Array, params: TableParams) -> TableState:
        shape = (self.num_arms, params.cumulative.shape[1] - 1) if self.track_reads else (0, 0)
        it = jnp.result_type(int)
        return TableState(jnp.zeros((), it), jnp.zeros(shape, it))

    def _phase_step(self, state: TableState, action: PullAll, params: TableParams):
        """A `PullAll` on the table: arm i reads X[i, s_i .. s_i + counts[i] - 1] with
        s_i = t + Σ_{j<i} counts[j], the entries the sequential schedule of one `Pull` per arm
        in index order reads (module docstring, "Interface")."""
        counts, n, _, bad = _counts_n(action, self.num_arms, state.t.dtype)
        horizon = params.cumulative.shape[1] - 1
        c = jnp.maximum(counts, 0)
        start = state.t + jnp.cumsum(c) - c
        lo = jnp.clip(start, 0, horizon)
        hi = jnp.clip(start + c, 0, horizon)
        rows = jnp.arange(self.num_arms)
        sums = params.cumulative[rows, hi] - params.cumulative[rows, lo]
        reads = state.reads
        if self.track_reads:
            cols = jnp.arange(horizon)
            hit = (cols[None, :] >= lo[:, None]) & (cols[None, :] < hi[:, None])
            reads = reads + hit.astype(reads.dtype)
        return TableState(state.t + n, reads), sums, {"illegal": bad, "rounds": n}

    def step(self, rng, state: TableState, action, params: TableParams):
        if isinstance(action, PullAll):
            return self._phase_step(state, action, params)
        arm, n = _arm_n(action, state.t.dtype)
        horizon = params.cumulative.shape[1] - 1
        a = jnp.clip(arm, 0, self.num_arms - 1)
        lo = jnp.clip(state.t, 0, horizon)
        hi = jnp.clip(state.t + n, 0, horizon)
        reward = params.cumulative[a, hi] - params.cumulative[a, lo]
        reads = state.reads
        if self.track_reads:
            cols = jnp.arange(horizon)
            hit = (jnp.arange(self.num_arms)[:, None] == a) & (cols >= lo) & (cols < hi)
            reads = reads + hit.astype(reads.dtype)
        metrics = {"illegal": (arm < 0) | (arm >= self.num_arms) | (n < 1)}
        if isinstance(action, Pull):
            metrics["rounds"] = n
        return TableState(state.t + n, reads), reward, metrics


# --------------------------------------------------------------------------- validation
def validate(features, theta) -> None:
    """One ConfigError line naming the field: K >= 2, finite features spanning R^d, θ of
    length d giving means in [0, 1] with a unique best arm."""
    if not isinstance(features, Sequence) or not features:
        raise ConfigError("env.features: must be a list of K >= 2 feature vectors (got none)")
    rows = [tuple(r) if isinstance(r, Sequence) else (r,) for r in features]
    if len(rows) < 2:
        raise ConfigError(f"env.K: must be an integer >= 2 (got {len(rows)} arms)")
    d = len(rows[0])
    if d < 1 or any(len(r) != d for r in rows):
        raise ConfigError("env.features: every arm needs the same number d >= 1 of coordinates")
    try:
        a = np.asarray(rows, np.float64)
    except (TypeError, ValueError):
        raise ConfigError("env.features: must be numbers") from None
    if not np.all(np.isfinite(a)):
        i = int(np.argmax(~np.all(np.isfinite(a), axis=1)))
        raise ConfigError(f"env.features: must be finite numbers (arm {i} has NaN or inf)")
    rank = _rank(a)
    if rank < d:
        raise ConfigError(
            f"env.features: must span R^d (rank {rank} < d = {d}); drop the dimensions the"
            " arms do not use"
        )
    if not isinstance(theta, Sequence) or len(theta) != d:
        got = len(theta) if isinstance(theta, Sequence) else theta
        raise ConfigError(f"env.theta: must have d = {d} numbers (got {got!r})")
    th = np.asarray([check_float("env.theta", x) for x in theta])
    means = a @ th
    bad = np.nonzero((means < 0) | (means > 1))[0]
    if bad.size:
        i = int(bad[0])
        raise ConfigError(
            f"env.theta: gives means outside [0, 1] (arm {i}: <a, theta> = {means[i]:.6g});"
            " rewards are Bernoulli(<a, theta>)"
        )
    top = np.sort(means)[::-1]
    if top[0] - top[1] < MIN_GAP:
        raise ConfigError(
            f"env.theta: the best arm must be unique (the two largest means differ by"
            f" {top[0] - top[1]:.3g} < {MIN_GAP:g})"
        )


def check_table_grid(table: np.ndarray, k: int) -> None:
    """One ConfigError line when an entry of the reward table is not a multiple of 2^-k: the
    first such entry (arm, round) and the grid that holds every entry."""
    x = np.asarray(table, np.float64)
    off = x * 2.0**k != np.round(x * 2.0**k)
    if not off.any():
        return
    arm, t = (int(v) for v in np.argwhere(off)[0])
    need = max(grid_exponent(float(v)) for v in np.unique(x[off]))
    fix = (
        f"reward_grid={need} holds every entry"
        if need <= MAX_GRID_K
        else f"no reward_grid <= {MAX_GRID_K} holds every entry (one needs 2^-{need})"
    )
    raise ConfigError(
        f"reward_grid: table entry {float(x[arm, t])!r} (arm {arm}, round {t}) is not a multiple of"
        f" 2^-{k} ({int(off.sum())} of {x.size} entries); {fix}, or reward_grid=None for values"
        " on no known grid"
    )


def _rank(a: np.ndarray) -> int:
    s = np.linalg.svd(a, compute_uv=False)
    return int(np.sum(s > RANK_TOL * max(a.shape) * max(s[0], 1e-300)))


def instance_arrays(env: LinearBAI) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features (K, d), θ (d,), means (K,)) of `env` as float64 NumPy arrays."""
    a = np.asarray(env.features, np.float64)
    th = np.asarray(env.theta, np.float64)
    return a, th, a @ th


# --------------------------------------------------------------------------- instances
def _lift(a: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a, 1) and (θ/2, 1/2): means (1 + <a, θ>)/2 (module docstring, "Lifting")."""
    return np.hstack([a, np.ones((a.shape[0], 1))]), np.append(theta / 2, 0.5)


def soare_instance(omega: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """d = 4, K = 5: e_1..e_4 and cos ω e_1 + sin ω e_2; θ = 0.9 e_1."""
    omega = check_float("env.omega", omega, 0.0, math.pi / 2, low_open=True, high_open=True)
    a = np.vstack([np.eye(4), [math.cos(omega), math.sin(omega), 0.0, 0.0]])
    return a, np.array([0.9, 0.0, 0.0, 0.0])


def od_linbai_instance(
    K: int = 20, phi_sd: float = 0.09, instance_seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Yang & Tan 2022, §5.1 (lifted): (1, 0); K - 2 arms at π/4 + φ, φ ~ N(0, phi_sd²); 3π/4."""
    K = check_int("env.K", K, 3)
    phi_sd = check_float("env.phi_sd", phi_sd, 0.0)
    seed = check_int("env.instance_seed", instance_seed, 0)
    phi = np.random.default_rng(seed).normal(0.0, phi_sd, K - 2)
    angles = np.concatenate([[0.0], np.pi / 4 + phi, [3 * np.pi / 4]])
    a = np.stack([np.cos(angles), np.sin(angles)], 1)
    return _lift(a, np.array([1.0, 0.0]))


def sphere_instance(
    K: int = 16, d: int = 10, alpha: float = 0.1, instance_seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """K uniform unit vectors in R^d (lifted); θ = (1 - α) x + α y, x, y the closest pair."""
    K = check_int("env.K", K, 2)
    d = check_int("env.d", d, 1)
    alpha = check_float("env.alpha", alpha, 0.0, 0.5, high_open=True)
    g = np.random.default_rng(check_int("env.instance_seed", instance_seed, 0)).normal(size=(K, d))
    a = g / np.linalg.norm(g, axis=1, keepdims=True)
    cos = a @ a.T - 2 * np.eye(K)
    i, j = np.unravel_index(int(np.argmax(cos)), cos.shape)
    return _lift(a, (1 - alpha) * a[i] + alpha * a[j])


def linear_bai(
    instance: str = "soare",
    omega: float = 0.3,
    K: int = 20,
    d: int = 10,
    phi_sd: float = 0.09,
    alpha: float = 0.1,
    instance_seed: int = 0,
    features: Sequence[Sequence[float]] | None = None,
    theta: Sequence[float] | None = None,
) -> LinearBAI:
    """The Hydra target of ``env=linear_bai``: the named instance (module docstring)."""
    check_choice("env.instance", instance, INSTANCES)
    if instance == "custom":
        if features is None or theta is None:
            raise ConfigError("env.features: instance=custom needs env.features and env.theta")
        rows = tuple(tuple(_number("env.features", x) for x in _row(r)) for r in features)
        th = tuple(_number("env.theta", x) for x in theta)
        return LinearBAI(rows, th, "custom")
    if instance == "soare":
        a, th = soare_instance(omega)
    elif instance == "od_linbai":
        a, th = od_linbai_instance(K, phi_sd, instance_seed)
    else:
        a, th = sphere_instance(K, d, alpha, instance_seed)
    rows = tuple(tuple(float(x) for x in r) for r in a)
    return LinearBAI(rows, tuple(float(x) for x in th), instance)


def _row(r) -> Sequence:
    if isinstance(r, Sequence) and not isinstance(r, str):
        return r
    raise ConfigError(f"env.features: each arm must be a list of numbers (got {r!r})")


def _number(name: str, x) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise ConfigError(f"{name}: must be numbers (got {x!r})")
    return float(x)  # NaN / inf are reported by `validate` with the arm
