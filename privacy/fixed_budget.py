"""Shared machinery of the fixed-budget best-arm identification algorithms (private or not).

Every phase-based fixed-budget algorithm of `privacy/` (DP-BAI, Sequential Halving and DP-SH,
OD-LinBAI and DP-OD-LinBAI) runs on `bandits.linear_bai.LinearBAI` with the same bookkeeping,
so that the privacy argument lives here, once:

* a phase *allocation* ``alloc`` (K,) ints: how many pulls each arm gets in the current phase;
  `next_phase` pulls every arm its remaining allocation in one step
  (``bandits.linear_bai.PullAll(counts)``: one step, Σ counts rounds, read arm after arm in
  index order, arm i's rounds back to back), so a phase is one step and its end follows at
  once; after the last phase it spends what is left of the budget on arm 0 in one step whose
  reward is discarded (`spend_rest`: the engine runs a multi-round run until T rounds are
  used). On an env without `PullAll` (Sequential Halving on a K-armed bandit) `next_pull`
  pulls one arm per step instead (``Pull(arm, n)``: the first arm whose allocation is not
  complete, all its remaining pulls), the same rounds in the same order;
* `PhaseStats` (per-arm counts and reward sums of the *current* phase only; `record` clips the
  reward sum of an arm's n rounds to [0, n], i.e. each round's reward to [0, 1] when the env
  keeps to its model), reset at every phase end, so no reward is used in two phases;
* `noisy_means`: the only place where rewards leave an agent: per released arm, the mean of its
  n phase rewards plus Laplace(1/(ε n)) noise (``epsilon = inf``: no noise);
* `top_mask` / `best_arm`: elimination and the recommendation, from released values only,
  ties broken uniformly at random by priorities of the arms drawn from `tie_key` (the
  agent's key and the phase index: data-independent randomness, so post-processing);
  `select`: a state's fields chosen per seed (phase ends happen at different steps per seed);
  `where_some`: the same choice with the phase-end work (releases, estimates, designs) run only
  in steps where some lane of the vmapped batch ends a phase (with one step per phase it skips
  only the unused budget's step, and measured no slower than a plain select; with one arm per
  step a phase ends in a few of the steps and a vmapped branch would run it in all of them).

Privacy (pure ε-DP, entry level; Chen, Karthik, Chee & Tan, ICLR 2024, §2 for the model and
relation; Dwork, McSherry, Nissim & Smith, TCC 2006 for the Laplace mechanism; McSherry, SIGMOD
2009, Theorem 4 for parallel composition). The data is the K x T potential-reward table X;
neighbours differ in one entry X[i, t]. An agent built on this module observes X[i, t] only if
it pulls arm i in round t, and then the reward enters exactly one release: arm i's noisy mean
at the end of that phase (or none: the rounds of `spend_rest` are discarded). Which entries:
a phase that starts at round t0 and allocates n_i pulls to arm i (arms in index order, one
`PullAll` step, or one `Pull` per arm) reads X[i, s_i], ..., X[i, s_i + n_i - 1] with
s_i = t0 + Σ_{j<i} n_j, and arm i's release of that phase reads exactly these entries (their
sum is the `PullAll`'s feedback for arm i). A mean of n values in [0, 1] has sensitivity 1/n
for one entry, so mean + Laplace(1/(ε n)) is ε-DP for that entry. Given the releases so far
and the tie-breaking priorities (`tie_key`: drawn from the agent's key and the phase index,
independent of the table and of the noise), the schedule of the next phase (its n_i, hence its
windows) is fixed (it is computed from the public features, the released values and those
priorities only), so the entries a release reads are fixed by the past releases; the windows
are disjoint, each entry influences at most one release, and the transcript of all releases is
ε-DP for every value of the priorities (adaptive parallel composition: the density ratio of
the transcript factorises over the releases, and only the release that reads the changed entry
has a ratio other than 1), hence also averaged over them (their law is the same under X and
X'). The pulls and the recommendation are post-processing of the transcript and the
priorities. The same holds for the one-column relation (a whole round differs): only one arm
is pulled per round.

Noise modes (`NOISE_MODES`, as for the counters in `privacy.counters`):

* ``research``: mean + Laplace(1) / (ε n) in floating point from the release's key (fast, on
  the device; exposed to floating-point attacks, Mironov CCS 2012);
* ``secure``: on the host, the clipped sum is released by `privacy.noise.laplace_mechanism`
  (sensitivity 1, the given ε: the sum rounded to the grid 2^-40 plus exact discrete Laplace
  noise of scale (1 + 2^-40)/ε in grid units, Canonne, Kamath & Steinke, NeurIPS 2020, Alg. 2),
  then divided by n (post-processing). Bits come from BLAKE2b keyed by the release's key
  (reproducible: simulations) or the OS (``source="os"``: releases). ε must be a Python number
  (a constant of the program), so the guarantee is for exactly the ε configured.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import custom_batching
from jax.experimental import io_callback

from bandits.envs import Pull
from bandits.linear_bai import LinearBAISpec, PullAll
from experiments.batched_cond import cond_any
from experiments.config import ConfigError, check_choice
from experiments.protocol import AgentBase, step_key
from privacy.accounting import Neighbouring, PureDP
from privacy.counters.secure import keyed_source, os_source
from privacy.noise import DEFAULT_GRID_K, NOISE_MODES, laplace_mechanism

SOURCES = ("key", "os")
_SEED_TAG = 0x66626169  # separates these host seeds from the counters' ("fbai")


# --------------------------------------------------------------------------- validation
def check_epsilon(name: str, epsilon) -> float:
    """ε > 0 (``inf``: no noise, the non-private algorithm), or one ConfigError line."""
    ok = isinstance(epsilon, int | float) and not isinstance(epsilon, bool)
    if not ok or math.isnan(epsilon) or epsilon <= 0:
        raise ConfigError(f"{name}: must be a number > 0, or .inf for no noise (got {epsilon!r})")
    return float(epsilon)


def check_noise(name: str, noise) -> str:
    return check_choice(name, noise, NOISE_MODES)


def guarantee(epsilon: float) -> PureDP | None:
    """The guarantee of an agent built on this module: pure ε-DP with respect to the K x T
    reward table, neighbours differing in one entry (`Neighbouring("event")`); None for ε = inf."""
    if math.isinf(epsilon):
        return None
    return PureDP(float(epsilon), Neighbouring("event"))


@dataclass(frozen=True)
class PrivateReleases:
    """The privacy fields every private fixed-budget agent has, validated at construction:
    `epsilon` (pure ε-DP per table entry; ``inf``: no noise), `noise` (research | secure,
    `noisy_means`) and `source` of the secure noise bits (key: reproducible from the seed;
    os: for real releases); `guarantee` states the DP definition that holds."""

    epsilon: float = 1.0
    noise: str = "research"
    source: str = "key"
    snap: bool = False  # secure: round reward sums off the grid 2^-40 instead of refusing the env

    def __post_init__(self):
        check_epsilon("epsilon", self.epsilon)
        check_noise("noise", self.noise)
        check_choice("source", self.source, SOURCES)
        if not isinstance(self.snap, bool):
            raise ConfigError(f"snap: must be true or false (got {self.snap!r})")
        if self.snap and self.noise != "secure":
            raise ConfigError("snap: used only with noise=secure; set snap=false")

    def check_reward_grid(self, spec: Any) -> None:
        """Secure noise releases exact Laplace noise on reward sums held on the grid
        2^-DEFAULT_GRID_K (`noisy_means`). An env whose rewards are not declared to lie on a grid
        2^-k with k <= DEFAULT_GRID_K (``spec.reward_grid``; Bernoulli rewards: 0) would have its
        sums rounded: refused in one line unless ``snap=true`` asks for the rounding (the noise
        scale (1 + 2^-40)/ε covers the rounded sums' sensitivity). With ``snap=true`` the
        guarantee is ε(1 + O(ulp)), not exactly ε: off-grid rewards are summed in floating point
        (a table env's windows are differences of float prefix sums), so changing one entry can
        move another window's sum by a rounding step, one entry then reaching two releases
        (measured: ε·1.2e-4 more in float32). On-grid rewards (Bernoulli, declared grids) sum
        exactly and keep ε. With ``source=key`` the secure noise is a function of the run's seed:
        it resists floating-point attacks but is private only while that seed is secret."""
        if self.noise != "secure" or self.snap:
            return
        k = getattr(spec, "reward_grid", 0)
        if k is None:
            raise ConfigError(
                f"snap: noise=secure needs rewards on a grid 2^-k, k <= {DEFAULT_GRID_K}, and the"
                " env declares none (reward_grid unset); declare the env's reward_grid, or set"
                f" snap=true to round the reward sums to 2^-{DEFAULT_GRID_K}"
            )
        if k > DEFAULT_GRID_K:
            raise ConfigError(
                f"snap: noise=secure needs rewards on a grid 2^-k, k <= {DEFAULT_GRID_K} (the env's"
                f" reward_grid is {k}); set snap=true to round the reward sums to"
                f" 2^-{DEFAULT_GRID_K}"
            )

    def guarantee(self) -> PureDP | None:
        """Pure ε-DP, entry-level neighbours of the K x T reward table (None for ε = inf)."""
        return guarantee(self.epsilon)


# --------------------------------------------------------------------------- phase bookkeeping
class PhaseStats(NamedTuple):
    counts: jax.Array  # (K,) int: pulls of each arm in the current phase
    sums: jax.Array  # (K,) float: clipped reward sums of the current phase


def phase_zeros(num_arms: int) -> PhaseStats:
    return PhaseStats(
        jnp.zeros((num_arms,), jnp.result_type(int)), jnp.zeros((num_arms,), jnp.result_type(float))
    )


def record(stats: PhaseStats, action: Pull | PullAll, reward) -> PhaseStats:
    """Add a step's rewards to the phase sums: a `Pull`'s reward, clipped to [0, n], to the
    pulled arm's; a `PullAll`'s (K,) sums, each clipped to [0, counts[i]], to each arm's."""
    if isinstance(action, PullAll):
        c = jnp.maximum(jnp.asarray(action.counts), 0)
        r = jnp.clip(jnp.asarray(reward, stats.sums.dtype), 0, c.astype(stats.sums.dtype))
        return PhaseStats(stats.counts + c.astype(stats.counts.dtype), stats.sums + r)
    n = jnp.asarray(action.n)
    r = jnp.clip(jnp.asarray(reward, stats.sums.dtype), 0, n.astype(stats.sums.dtype))
    hot = jnp.arange(stats.counts.shape[0]) == action.arm
    return PhaseStats(
        stats.counts + jnp.where(hot, n, 0).astype(stats.counts.dtype),
        stats.sums + jnp.where(hot, r, 0),
    )


def record_sums(stats: PhaseStats) -> PhaseStats:
    """Phase statistics given whole (counts, sums) at once, each sum clipped to [0, count]."""
    c = stats.counts.astype(stats.sums.dtype)
    return PhaseStats(stats.counts, jnp.clip(stats.sums, 0, c))


def select(flag, new: NamedTuple, old: NamedTuple, fields: tuple[str, ...]) -> NamedTuple:
    """`old` with each of `fields` taken from `new` where `flag` (per seed under vmap); other
    fields (PRNG keys, static plans) are kept from `old`."""
    return old._replace(
        **{
            f: jax.tree.map(lambda a, b: jnp.where(flag, a, b), getattr(new, f), getattr(old, f))
            for f in fields
        }
    )


def phase_complete(alloc: jax.Array, stats: PhaseStats) -> jax.Array:
    """True when every arm has had its allocation of the current phase."""
    return jnp.all(stats.counts >= alloc)


def next_phase(
    alloc: jax.Array,
    stats: PhaseStats,
    t: jax.Array,
    horizon,
    finished,
    left=None,
    slots: int | None = None,
) -> PullAll:
    """The next step: every arm's remaining allocation of the phase at once (a `PullAll`);
    once `finished` (after the last phase), the rest of the budget on arm 0 (`spend_rest`).

    `left` (optional): rounds left in the budget; the counts are then cut, arm after arm in
    index order, to that many rounds (the cut the one-arm-per-step schedule would make).
    `slots` (static): the most arms any phase allocates to (`PullAll.slots`; None: K)."""
    it = jnp.result_type(int)
    counts = jnp.maximum(alloc - stats.counts, 0).astype(it)
    if left is not None:
        before = jnp.cumsum(counts) - counts
        counts = jnp.clip(jnp.asarray(left, it) - before, 0, counts)
    rest = spend_rest(t, horizon)
    first = jnp.arange(alloc.shape[0]) == 0
    counts = jnp.where(finished, jnp.where(first, rest.n, 0), counts).astype(it)
    return PullAll(counts, slots)


def next_pull(alloc: jax.Array, stats: PhaseStats, t: jax.Array, horizon, finished) -> Pull:
    """The next step: all remaining pulls of the lowest-index arm whose allocation is not
    complete; once `finished` (after the last phase), the rest of the budget (`spend_rest`)."""
    it = jnp.result_type(int)
    left = jnp.maximum(alloc - stats.counts, 0).astype(it)
    arm = jnp.argmax(left > 0).astype(jnp.int32)
    rest = spend_rest(t, horizon)
    return Pull(
        jnp.where(finished, jnp.int32(0), arm),
        jnp.where(finished, rest.n, jnp.maximum(left[arm], 1)).astype(it),
    )


def spend_rest(t: jax.Array, horizon) -> Pull:
    """Arm 0 for the T - t rounds left (at least 1; T an int or an int array, maybe traced);
    the agent discards this reward."""
    it = jnp.result_type(int)
    return Pull(jnp.int32(0), jnp.maximum(jnp.asarray(horizon, it) - t.astype(it), 1))


# The fields a phase end rewrites (the rest of a phased agent's state is its key and plan).
PHASE_FIELDS = ("phase", "active", "alloc", "stats", "finished", "choice", "releases")


def whole_phases(spec: Any) -> bool:
    """Whether the env of `spec` takes `PullAll` (a whole phase in one step): the linear BAI
    envs (`bandits.linear_bai`); otherwise (a K-armed bandit) one `Pull` per arm and phase."""
    return isinstance(spec, LinearBAISpec)


def checked_horizon(agent: Any, spec: Any, inputs: Any) -> jax.Array:
    """`spec.horizon` as the integer array the phase budgets are computed from (traced in the
    engine's programs), after the agent's own `horizon_inputs` check (one ConfigError line) where
    the engine has not run it (`inputs` None: an ``init(key, spec)`` call)."""
    if inputs is None:
        agent.horizon_inputs(spec)
    return jnp.asarray(spec.horizon, jnp.result_type(int))


class PhasedAgent(AgentBase):
    """`act` and `update` of a phased fixed-budget agent whose state has ``horizon`` (T, an
    int array: traced in the engine's programs, so every T shares them), ``alloc``, ``stats``,
    ``finished`` and `PHASE_FIELDS`: pull every arm its allocation in one
    step (`next_phase`; with ``plan.per_arm``, one arm per step, `next_pull`), record the
    rewards (`record`), and at a phase's end take the subclass's ``end_phase(state)`` (its
    release and elimination; run only in steps where some lane ends a phase, `where_some`);
    after the last phase spend the rest of the budget and discard it."""

    def pull_slots(self, state) -> int | None:
        """The most arms one phase allocates to (static; `PullAll.slots`); None: K."""
        return None

    def act(self, rng, state, t: jax.Array) -> Pull | PullAll:
        pl = state.plan
        if getattr(pl, "per_arm", False):
            return next_pull(state.alloc, state.stats, t, state.horizon, state.finished)
        slots = self.pull_slots(state)
        return next_phase(state.alloc, state.stats, t, state.horizon, state.finished, None, slots)

    def update(self, state, t, action: Pull | PullAll, reward):
        live = ~state.finished
        stats = record(state.stats, action, reward)  # discarded once finished
        state = select(live, state._replace(stats=stats), state, ("stats",))
        done = live & phase_complete(state.alloc, state.stats)
        return where_some(self, "end_phase", done, state, fields=PHASE_FIELDS)


# --------------------------------------------------------------------------- phase ends
def where_some(agent, method: str, pred, state, *args, fields: tuple[str, ...] | None = None):
    """`state` with ``agent.<method>(state, *args)`` taken where `pred` (`fields` of it only;
    None: the whole state), the method run only in steps where some lane of the vmapped batch
    has `pred` (`experiments.batched_cond.cond_any`: a phase end is rare, a vmapped branch
    would run it in every step). Same values as ``select(pred, method(state), state, fields)``.

    The agent's array-valued fields (hyperparameters lifted into the program, tracers) are
    passed as inputs; the rest (strings, Python numbers, the class) key the cached branch. An
    agent that cannot be keyed that way (not a dataclass, unhashable fields) takes the plain
    select of both sides.
    """
    split = _agent_split(agent)
    names = fields if fields is not None else state._fields
    if split is None:
        new = getattr(agent, method)(state, *args)
        return select(pred, new, state, names)
    key, values = split
    apply = cond_any(_run_method, key, method, fields)
    old = {f: getattr(state, f) for f in names}
    return state._replace(**apply(pred, (values, state, args), old))


def _agent_split(agent) -> tuple[tuple, tuple] | None:
    """(key, values): the agent's class, its static fields, the names of its array fields
    (the key, hashable) and those arrays; None when it cannot be split so."""
    if not dataclasses.is_dataclass(agent) or isinstance(agent, type):
        return None
    static, names, values = [], [], []
    for f in dataclasses.fields(agent):
        v = getattr(agent, f.name)
        if isinstance(v, jax.Array):  # lifted numbers (tracers) and concrete arrays
            names.append(f.name)
            values.append(v)
        else:
            static.append((f.name, type(v), v))  # the type: 1 and 1.0 key apart
    key = (type(agent), tuple(static), tuple(names))
    try:
        hash(key)
    except TypeError:
        return None
    return key, tuple(values)


def _run_method(inputs, key: tuple, method: str, fields: tuple[str, ...] | None) -> dict:
    """The branch of `where_some`: the agent rebuilt from `key` and the traced values (no
    ``__init__``: its validation must not see tracers), its `method` on the state."""
    values, state, args = inputs
    cls, static, names = key
    agent = object.__new__(cls)
    for name, _, v in static:
        object.__setattr__(agent, name, v)
    for name, v in zip(names, values, strict=True):
        object.__setattr__(agent, name, v)
    new = getattr(agent, method)(state, *args)
    return {f: getattr(new, f) for f in (fields if fields is not None else new._fields)}


# --------------------------------------------------------------------------- releases
def noisy_means(
    sums: jax.Array,
    counts: jax.Array,
    epsilon,
    key: jax.Array,
    noise: str = "research",
    *,
    release: jax.Array | None = None,
    source: str = "key",
) -> jax.Array:
    """The released means: per arm, clip(sum, 0, n)/n + Laplace(1/(ε n)), n = counts.

    `release` (K,) bool: the arms released (default: counts > 0); other entries are 0. `key`
    must be fresh for every release (derive it with ``experiments.protocol.step_key`` from the
    agent's key and the phase). ``epsilon = inf`` gives the plain means. ``research``: float
    noise from `key`, `epsilon` may be traced; ``secure``: `epsilon` a Python number, exact
    noise on the host (module docstring).
    """
    check_noise("noise", noise)
    counts = jnp.asarray(counts)
    dt = jnp.result_type(float)
    mask = counts > 0 if release is None else jnp.asarray(release) & (counts > 0)
    n = jnp.maximum(counts, 1).astype(dt)
    clipped = jnp.clip(jnp.asarray(sums, dt), 0, n)
    if noise == "research":
        eps = jnp.asarray(epsilon, dt)
        lap = jax.random.laplace(key, counts.shape, dt)
        return jnp.where(mask, clipped / n + lap / (eps * n), 0.0)
    try:
        eps = float(epsilon)
    except (TypeError, jax.errors.ConcretizationTypeError):
        raise ConfigError("epsilon: secure noise needs a constant epsilon") from None
    check_epsilon("epsilon", eps)
    check_choice("source", source, SOURCES)
    if math.isinf(eps):
        return jnp.where(mask, clipped / n, 0.0)
    noisy_sums = _secure_release(eps, source, np.dtype(dt).name)(
        jax.random.key_data(key), clipped, mask
    )
    return jnp.where(mask, noisy_sums / n, 0.0)


def _host_sums(epsilon, source, dtype, key_data, sums, mask) -> np.ndarray:
    """Exact Laplace releases of the masked sums (sensitivity 1), one keyed source per release."""
    sums, mask = np.asarray(sums), np.asarray(mask, bool)
    kd = np.asarray(key_data).reshape(-1, np.shape(key_data)[-1])
    flat_s, flat_m = sums.reshape(kd.shape[0], -1), mask.reshape(kd.shape[0], -1)
    out = np.zeros(flat_s.shape, dtype)
    for b in range(kd.shape[0]):
        cols = np.flatnonzero(flat_m[b])
        if cols.size == 0:
            continue
        if source == "os":
            src = os_source()
        else:
            words = [int(w) for w in kd[b]]
            src = keyed_source(struct.pack(f"<{len(words) + 1}Q", _SEED_TAG, *words))
        values = [float(v) for v in flat_s[b, cols]]
        # one entry (or one round's column) of the table moves one arm's sum: changed=1
        out[b, cols] = laplace_mechanism(values, 1.0, epsilon, src, DEFAULT_GRID_K, changed=1)
    return out.reshape(sums.shape)


@functools.cache
def _secure_release(epsilon: float, source: str, dtype_name: str):
    """`release(key_data, sums, mask)`: one host call per step for a whole vmapped batch."""
    dtype = np.dtype(dtype_name)
    host = functools.partial(_host_sums, epsilon, source, dtype)

    @custom_batching.custom_vmap
    def release(kd, sums, mask):
        return io_callback(host, jax.ShapeDtypeStruct(sums.shape, dtype), kd, sums, mask)

    @release.def_vmap
    def _batched(axis_size, in_batched, kd, sums, mask):
        args = [
            x if b else jnp.broadcast_to(x, (axis_size, *x.shape))
            for x, b in zip((kd, sums, mask), in_batched, strict=True)
        ]
        return release(*args), True

    return release


# --------------------------------------------------------------------------- decisions
TIE_TAG = 0x74696573  # "ties": a phase's tie-breaking key, apart from its release key


def tie_key(key: jax.Array, phase) -> jax.Array:
    """The key that breaks the ties of phase `phase`'s elimination: ``step_key(key, phase,
    TIE_TAG)`` (`experiments.protocol.step_key`), apart from the release key
    ``step_key(key, phase)``. It depends on the agent's key and the phase index only, never on
    the data: breaking ties with it is post-processing of the transcript (module docstring)."""
    return step_key(key, phase, TIE_TAG)


def tie_priority(key: jax.Array, num_arms: int) -> jax.Array:
    """Uniform 24-bit priorities of the arms (distinct integers held exactly in float32, one
    threefry word each): among equal scores the arm of higher priority wins; two tied arms
    share a priority with probability 2^-24, the lower index then winning. The order they give,
    `tie_order`, is a uniform permutation of the arms but for such collisions. (Floats, because
    `lax.top_k` on int32 costs twice as much on the CPU.)"""
    bits = jax.random.bits(key, (num_arms,), jnp.uint32)
    return jnp.right_shift(bits, 8).astype(jnp.float32)


def tie_order(key: jax.Array, num_arms: int) -> jax.Array:
    """The arms from the highest `tie_priority` to the lowest (stable: a priority tie to the
    lower index), the order in which `top_mask` and `best_arm` rank equal scores."""
    return jnp.argsort(-tie_priority(key, num_arms), stable=True)


def top_mask(
    scores: jax.Array, active: jax.Array, m, key: jax.Array, k_max: int | None = None
) -> jax.Array:
    """The `m` arms of `active` with the largest scores, as a mask; ties broken at random.

    The fixed-budget papers keep "the arms with the largest estimates" (Karnin, Koren & Somekh,
    ICML 2013, Alg. 1; Yang & Tan, NeurIPS 2022, Alg. 1, line 11; Chen et al., ICLR 2024,
    Alg. 1) and leave ties open. A fixed rule is not neutral: our instances put the best arm
    below its runner-up in index order, and with Bernoulli rewards and no noise the last duel
    ties often, so "ties to the lower index" makes the error look smaller than it is. Here the
    arms scoring above the m-th largest score (`kth_largest`) are kept, and the places left go to
    the arms equal to it in the order of `tie_priority(key, K)` (`key`, e.g. `tie_key` of the
    phase): every arm of a tied group is equally likely to be kept (m' kept of j tied: a uniform
    m'-subset), and the same key gives the same choice (reproducible per seed). The tie rule
    (`_tie_fill`: priorities and a partial sort) runs only in calls where some lane of the
    vmapped batch has more arms at the cut than places left (`experiments.batched_cond.cond_any`;
    with noise, ties have probability 0); elsewhere every arm at the cut is kept, as the rule
    would keep them.

    `m` may be traced; `k_max` (static, default K) bounds it.
    """
    k = scores.shape[0]
    k0 = k if k_max is None else max(1, min(k, int(k_max)))
    x = jnp.where(active, scores, -jnp.inf)
    cut = kth_largest(x, m, k0)
    above = x > cut
    at = (x == cut) & active
    places = m - jnp.sum(above)
    fill = cond_any(_tie_fill, k0)(jnp.sum(at) > places, (at, places, key), at)
    return (above | fill) & active & (m > 0)


def kth_largest(x: jax.Array, m, rounds: int) -> jax.Array:
    """The m-th largest entry of `x` counted with multiplicity (``sort(x)[::-1][m - 1]``), m
    clipped to [1, rounds] (`rounds` static): the distinct values from the top, one per round,
    until m entries are at or above one. Elementwise work and reductions only: ``lax.top_k``
    followed by taking one of its values compiles on the CPU to a sort of the whole row (8x the
    top_k, measured at 10^4 rows of 64)."""
    m = jnp.clip(m, 1, rounds)
    v = jnp.max(x)
    cut, found = v, jnp.sum(x >= v) >= m
    for _ in range(rounds - 1):
        v = jnp.max(jnp.where(x < v, x, -jnp.inf))
        hit = ~found & (jnp.sum(x >= v) >= m)
        cut, found = jnp.where(hit, v, cut), found | hit
    return cut


def _tie_fill(inputs, k0: int) -> jax.Array:
    """`top_mask`'s tie rule: of the arms `at` the cut, the `places` of highest `tie_priority`."""
    at, places, key = inputs
    k = at.shape[0]
    _, idx = jax.lax.top_k(jnp.where(at, tie_priority(key, k), -1.0), k0)
    return jnp.zeros((k,), bool).at[idx].set(jnp.arange(k0) < places) & at


def best_arm(scores: jax.Array, active: jax.Array, key: jax.Array) -> jax.Array:
    """argmax of `scores` over `active`, ties broken by `tie_priority(key, K)` (the arm
    `top_mask` keeps with m = 1 and the same key)."""
    x = jnp.where(active, scores, -jnp.inf)
    return jnp.argmax(jnp.where(x == jnp.max(x), tie_priority(key, x.shape[0]), -1.0)).astype(
        jnp.int32
    )
