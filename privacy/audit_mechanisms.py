"""Mechanisms for `privacy.audit`: controls, the StatDP battery (R8) and the continual MaxSum /
SumSelect mechanisms of Jain, Raskhodnikova, Sivakumar & Smith (ICML 2023).

Every mechanism has the auditor's signature ``M(x, n, rng) -> outputs`` (n independent runs,
vectorised over runs with NumPy or `jax.vmap`).

* Laplace on a count (sensitivity 1), claimed ε: `exact_laplace` (CKS20 discrete Laplace of
  `privacy.noise`; correct), `no_noise`, `half_noise` (scale 1/(2ε): really 2ε-DP),
  `float_laplace` (naive float; Mironov 2012). `exact_gaussian`: discrete Gaussian, ρ-zCDP.
* StatDP's `statdp/algorithms.py` (cmla-psu/statdp@747fad6; Lyu, Su & Li, VLDB 2017 analyse the
  iSVT variants): `noisy_max_v1a/v2a`, `histogram`, `svt` correct; `noisy_max_v1b/v2b`,
  `histogram_eps`, `isvt1..4` incorrect. `STATDP_PAIRS` are StatDP's `generate_databases`
  candidates for 5 queries (ALL_DIFFER; ONE_DIFFER = the first two, for the histograms).
* `maxsum_releases`: a continual MaxSum / SumSelect agent run on a fixed stream (inputs are
  neighbouring streams), or against a deterministic adaptive adversary with a challenge record.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from privacy import noise
from privacy.audit import naive_float_laplace, uniform_grid53
from privacy.maxsum import SparseVectorMaxSum
from privacy.streams import AdaptiveStream, FixedStream


# --------------------------------------------------------------------------- controls
def exact_laplace(epsilon: float):
    """x + Lap_Z(1/ε) with the exact CKS20 sampler: ε-DP for integer x with |x - x'| <= 1."""
    scale = Fraction(epsilon).limit_denominator(10**6) ** -1

    def m(x, n, rng):
        return x + noise.sample(noise.discrete_laplace, scale, n, rng)

    return m


def exact_gaussian(sigma2: float):
    """x + N_Z(0, σ²) exactly (CKS20 Alg. 3): 1/(2σ²)-zCDP for |x - x'| <= 1."""

    def m(x, n, rng):
        return x + noise.sample(noise.discrete_gaussian, Fraction(sigma2), n, rng)

    return m


def no_noise(epsilon: float):
    """Positive control: the exact value (not DP for any ε)."""
    return lambda x, n, rng: np.full(n, float(x))


def half_noise(epsilon: float):
    """Positive control: Lap_Z(1/(2ε)) claimed as ε-DP (really 2ε-DP)."""
    return exact_laplace(2 * epsilon)


def float_laplace(epsilon: float):
    """Positive control (R7): naive float x + Lap(1/ε) (`audit.naive_float_laplace`)."""
    return lambda x, n, rng: naive_float_laplace(float(x), uniform_grid53(n, rng), 1 / epsilon)


# --------------------------------------------------------------------------- StatDP battery
def _lap(rng, scale, shape):
    return rng.laplace(scale=scale, size=shape)


def noisy_max_v1a(eps):
    return lambda q, n, rng: np.argmax(np.asarray(q) + _lap(rng, 2 / eps, (n, len(q))), 1)


def noisy_max_v1b(eps):  # INCORRECT: the max value instead of the index
    return lambda q, n, rng: np.max(np.asarray(q) + _lap(rng, 2 / eps, (n, len(q))), 1)


def noisy_max_v2a(eps):
    return lambda q, n, rng: np.argmax(np.asarray(q) + rng.exponential(2 / eps, (n, len(q))), 1)


def noisy_max_v2b(eps):  # INCORRECT: the max value instead of the index
    return lambda q, n, rng: np.max(np.asarray(q) + rng.exponential(2 / eps, (n, len(q))), 1)


def histogram(eps):
    return lambda q, n, rng: q[0] + _lap(rng, 1 / eps, n)


def histogram_eps(eps):  # INCORRECT: scale ε instead of 1/ε
    return lambda q, n, rng: q[0] + _lap(rng, eps, n)


def _above(q, n, rng, thr_scale, q_scale, T=1.0, strict=False):
    """(n, m) above-threshold indicators with one threshold noise per run."""
    q = np.asarray(q, float)
    noisy_t = T + _lap(rng, thr_scale, (n, 1))
    noisy_q = q + (_lap(rng, q_scale, (n, q.size)) if q_scale > 0 else 0.0)
    return (noisy_q > noisy_t) if strict else (noisy_q >= noisy_t), noisy_q


def _until_nth(above: np.ndarray, N: int) -> np.ndarray:
    """Mask of the answers given: up to and including the N-th True."""
    c = np.cumsum(above, 1)
    return (c - above) < N


def _hamming(above: np.ndarray, given: np.ndarray) -> np.ndarray:
    """StatDP's score: Hamming distance to (True * m//2, False * rest), with missing answers
    counted as differing (`zip_longest`)."""
    m = above.shape[1]
    ref = np.arange(m) < m // 2
    return np.sum(np.where(given, above != ref, True), 1)


def svt(eps, N=1, T=0.5):
    """Correct SVT (Lyu et al. Alg. 1): thr Lap(2/ε), queries Lap(4N/ε), stop at the N-th ⊤;
    output: the number of ⊥ answers."""

    def m(q, n, rng):
        above, _ = _above(q, n, rng, 2 / eps, 4 * N / eps, T)
        return np.sum(~above & _until_nth(above, N), 1)

    return m


def isvt1(eps, N=1, T=1.0):  # INCORRECT: no query noise
    def m(q, n, rng):
        above, _ = _above(q, n, rng, 2 / eps, 0.0, T)
        return _hamming(above, np.ones_like(above))

    return m


def isvt2(eps, N=1, T=1.0):  # INCORRECT: query noise not scaled with N, no cap on ⊤
    def m(q, n, rng):
        above, _ = _above(q, n, rng, 2 / eps, 2 / eps, T)
        return _hamming(above, np.ones_like(above))

    return m


def isvt3(eps, N=1, T=1.0):  # INCORRECT: thr Lap(4/ε), queries Lap(4/(3ε)), strict >
    def m(q, n, rng):
        above, _ = _above(q, n, rng, 4 / eps, 4 / (3 * eps), T, strict=True)
        return _hamming(above, _until_nth(above, N))

    return m


def isvt4(eps, N=1, T=1.0):  # INCORRECT: outputs the noisy query instead of ⊤
    """Output (number of ⊥, last answer: the noisy query if ⊤ was reached, else 0 = False)."""

    def m(q, n, rng):
        above, noisy_q = _above(q, n, rng, 2 / eps, 2 * N / eps, T, strict=True)
        given = _until_nth(above, N)
        count = np.sum(~above & given, 1)
        last = np.where(above.any(1), noisy_q[np.arange(n), np.argmax(above, 1)], 0.0)
        return np.stack([count, last], 1)

    return m


def _statdp_pairs(m: int = 5) -> list[tuple[list[int], list[int]]]:
    d1 = [1] * m
    h = m // 2
    return [
        (d1, [0] + [1] * (m - 1)),
        (d1, [2] + [1] * (m - 1)),
        (d1, [2] + [0] * (m - 1)),
        (d1, [0] + [2] * (m - 1)),
        (d1, [2] * h + [0] * (m - h)),
        (d1, [2] * m),
        (d1, [0] * m),
        ([1] * h + [0] * (m - h), [0] * h + [1] * (m - h)),
    ]


STATDP_PAIRS = _statdp_pairs()
ONE_DIFFER_PAIRS = STATDP_PAIRS[:2]

# name -> (factory, correct?, pairs); StatDP's benchmark parameters (examples/benchmark.py)
STATDP_BATTERY = {
    "noisy_max_v1a": (noisy_max_v1a, True, STATDP_PAIRS),
    "noisy_max_v1b": (noisy_max_v1b, False, STATDP_PAIRS),
    "noisy_max_v2a": (noisy_max_v2a, True, STATDP_PAIRS),
    "noisy_max_v2b": (noisy_max_v2b, False, STATDP_PAIRS),
    "histogram": (histogram, True, ONE_DIFFER_PAIRS),
    "histogram_eps": (histogram_eps, False, ONE_DIFFER_PAIRS),
    "SVT": (svt, True, STATDP_PAIRS),
    "iSVT1": (isvt1, False, STATDP_PAIRS),
    "iSVT2": (isvt2, False, STATDP_PAIRS),
    "iSVT3": (isvt3, False, STATDP_PAIRS),
    "iSVT4": (isvt4, False, STATDP_PAIRS),
}


# --------------------------------------------------------------------------- Jain et al. mechanisms
@dataclass(frozen=True)
class ChallengeStream:
    """The adaptive game's stream: `AdaptiveStream`'s greedy adversary with probabilities in
    {0, 1} (p_lead = 1, p_base = 0: deterministic), except the record of 0-based index `t_star`,
    which is the challenge record (params ``challenge``)."""

    d: int
    t_star: int
    adaptive: ClassVar[bool] = True
    bound: ClassVar[float] = 1.0

    @property
    def adversary(self) -> AdaptiveStream:
        return AdaptiveStream(self.d, 1.0, 0.0)

    def params(self, challenge=None) -> dict[str, jax.Array]:
        dt = jnp.result_type(float)
        c = jnp.zeros((self.d,), dt) if challenge is None else jnp.asarray(challenge, dt)
        return {"probs": self.adversary.params(), "challenge": c}

    def check_horizon(self, horizon: int) -> None:
        return None

    def grid(self, horizon: int) -> None:
        """The records' input grid (`privacy.streams`): not declared, since the challenge record
        is a parameter (unknown here); the agents audited on this stream do not quantise."""
        return None

    def randomness(self) -> dict:
        return self.adversary.randomness()

    def first(self, key: jax.Array, params) -> jax.Array:
        x = self.adversary.first(key, params["probs"])
        return jnp.where(self.t_star == 0, params["challenge"], x)

    def next(self, rng, t, params, release, totals) -> jax.Array:
        x = self.adversary.next(rng, t, params["probs"], release, totals)
        return jnp.where(t + 1 == self.t_star, params["challenge"], x)


def audit_env(problem: str, horizon: int, d: int, t_star: int | None = None):
    """The `ContinualMaxSum` environment `maxsum_releases` runs: a fixed stream of `horizon`
    records (its params: the (horizon, d) records; the placeholder values only fix the shape),
    or, with `t_star`, the adaptive game's `ChallengeStream` (params: `ChallengeStream.params`)."""
    from privacy.maxsum import ContinualMaxSum

    fixed = FixedStream(((0.0,) * d,) * horizon)
    return ContinualMaxSum(fixed if t_star is None else ChallengeStream(d, t_star), problem)


@functools.cache
def _releases_program(agent, problem: str, horizon: int, d: int, t_star: int | None):
    """jit(vmap over run keys(rollout)) -> releases (n, horizon), for one agent and shape; the
    stream (the records, or the challenge record) is the environment's params, an argument."""
    from experiments.rollout import rollout

    env = audit_env(problem, horizon, d, t_star)

    def run(params, keys):
        def one(key):
            r = rollout(env, params, agent, key, horizon, emit=lambda tr: tr.action)
            return r.emitted, r.illegal

        return jax.vmap(one)(keys)

    return jax.jit(run)


def maxsum_releases(agent, problem: str = "maxsum", adaptive_at: int | None = None):
    """The release sequence (n, T) of a continual agent (`privacy.maxsum`) as a mechanism.

    Input: a (T, d) array of records (neighbours differ in one row), streamed by a fixed-stream
    `ContinualMaxSum` environment. With `adaptive_at` = t*, the input is instead a challenge
    record: the stream is `ChallengeStream`, whose rows t != t* a deterministic adaptive
    adversary chooses from the previous release (the greedy rule of
    `privacy.streams.AdaptiveStream` with probabilities in {0, 1}) and whose row t* is the
    challenge record: privacy against adaptive streams (Jain et al., ICML 2023) means the two
    challenge worlds' release sequences are ε-close. Each run is the engine's one-seed
    `experiments.rollout.rollout` on `audit_env`, vmapped: run i uses the engine's run key i of
    ``split(key(seed), n)``, with `seed` drawn from `rng`.
    """

    def m(x, n, rng, horizon: int | None = None):
        records = np.asarray(x, float)
        if adaptive_at is None:
            T, d = records.shape
            params = jnp.asarray(records, jnp.result_type(float))
        else:
            T, d = horizon, records.shape[0]
            params = ChallengeStream(d, adaptive_at).params(records)
        keys = jax.random.split(jax.random.key(int(rng.integers(2**31))), n)
        releases, illegal = _releases_program(agent, problem, T, d, adaptive_at)(params, keys)
        if np.asarray(illegal).any():
            raise RuntimeError("illegal release in an audited run")
        return np.asarray(releases, float)

    return m


def maxsum_adaptive_mechanism(agent, horizon: int, t_star: int, problem: str = "maxsum"):
    """`maxsum_releases` in the adaptive game: input = the challenge record at step t_star."""
    m = maxsum_releases(agent, problem, adaptive_at=t_star)
    return lambda x, n, rng: m(x, n, rng, horizon)


class SVTWithoutReleaseNoise(SparseVectorMaxSum):
    """Positive control: `SparseVectorMaxSum` whose epoch releases carry no noise (the exact max
    / argmax at each epoch start), still claiming the calibrated ε."""

    def init(self, key, spec):
        state = super().init(key, spec)
        return state._replace(scales=state.scales.at[3].set(0.0))
