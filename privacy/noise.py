"""Noise for differential privacy: exact discrete samplers (secure mode) and JAX float samplers
(research mode).

Secure mode follows Canonne, Kamath & Steinke, "The Discrete Gaussian for Differential Privacy"
(NeurIPS 2020, arXiv:2004.00010), §5, Algorithms 1-3: every probability is a rational number
and every comparison is made with Python integers, so no floating-point rounding can leak
(Mironov, CCS 2012). Randomness comes from an `IntSource` (uniform random bits): a seeded
`numpy.random.Generator` for reproducible tests, or `secrets` (the OS CSPRNG) for releases.

* `bernoulli_exp(gamma)`      Bernoulli(exp(-gamma)), gamma >= 0 rational   (CKS20 Alg. 1)
* `discrete_laplace(scale)`   P(Y = y) ∝ exp(-|y| / scale), scale rational  (CKS20 Alg. 2)
* `discrete_gaussian(sigma2)` P(Y = y) ∝ exp(-y^2 / (2 sigma2))              (CKS20 Alg. 3)

Timing. The samplers are rejection samplers: their running time depends on the value drawn
(CKS20 Alg. 1-3 loop a number of times that depends on the value), so the guarantee
covers the released values, not how long a release takes (a timing side channel; OpenDP
documents the same limitation for its samplers; see `privacy.counters.secure`).

`laplace_mechanism` / `gaussian_mechanism` release float values without a float-noise channel:
the value is rounded to the grid 2^-k, exact discrete noise is added in grid units, and the sum
is scaled back (GRS12 / CKS20 §5.2; OpenDP ``make_laplace`` with granularity ``k``). Rounding
can move each coordinate by half a grid step, so between neighbours each coordinate that can
change may differ by one more grid step: the ℓ1 sensitivity is inflated by m grid steps (m the
coordinates a neighbour can change, all of them by default), the ℓ2 one by sqrt(m).

Research mode (`research_laplace`, `research_gaussian`) draws continuous noise with
`jax.random` in floating point: fast, jit/vmap-able, reproducible from a key, but exposed to the
floating-point attacks above. Results record which mode produced them (`NoiseMode`).

All scales are explicit: a Laplace *scale* b (std = b sqrt(2)) and a Gaussian *standard
deviation* sigma (never a variance; see the `np.random.normal(0, variance)` bug in
`mechanism_noise_generation.py` of github.com/jodander/smooth-binary-mechanism, the reference code
of Andersson & Pagh, NeurIPS 2023).
"""

from __future__ import annotations

import math
import secrets
from fractions import Fraction
from typing import Literal, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from experiments.config import ConfigError

NoiseMode = Literal["secure", "research"]
NOISE_MODES: tuple[str, ...] = ("secure", "research")
DEFAULT_GRID_K = 40  # grid 2^-40, as Google's granularity 2^40 (go/noise/laplace_noise.go)

Rational = Fraction | int | float


# --------------------------------------------------------------------------- random bits
class IntSource(Protocol):
    """Uniform random bits: `randbits(k)` is uniform on {0, ..., 2^k - 1}."""

    def randbits(self, k: int) -> int: ...


class SecretsSource:
    """The operating system's CSPRNG (`secrets`); use for real releases."""

    def randbits(self, k: int) -> int:
        return secrets.randbits(k) if k > 0 else 0


class PoolSource:
    """Uniform random bits (an `IntSource`) from 64-byte blocks of `block()`, consumed in order
    (little-endian: the first block gives the lowest bits)."""

    def __init__(self, block):
        self._block = block
        self._pool, self._bits = 0, 0

    def randbits(self, k: int) -> int:
        if k <= 0:
            return 0
        while self._bits < k:
            self._pool |= int.from_bytes(self._block(), "little") << self._bits
            self._bits += 512
        out = self._pool & ((1 << k) - 1)
        self._pool >>= k
        self._bits -= k
        return out


class GeneratorSource(PoolSource):
    """Bits from a `numpy.random.Generator` (seeded: reproducible; or a CSPRNG-seeded SFC64),
    fetched 64 bytes at a time and consumed in order."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        super().__init__(lambda: rng.bytes(64))


def as_source(source: IntSource | np.random.Generator | int | None) -> IntSource:
    """An IntSource from a source, a Generator, an integer seed, or None (= `secrets`)."""
    if source is None:
        return SecretsSource()
    if isinstance(source, np.random.Generator):
        return GeneratorSource(source)
    if isinstance(source, int) and not isinstance(source, bool):
        return GeneratorSource(np.random.default_rng(source))
    return source


def randbelow(n: int, src: IntSource) -> int:
    """Uniform on {0, ..., n-1} by rejection from n.bit_length() random bits (exact)."""
    if n < 1:
        raise ValueError(f"n: must be >= 1 (got {n})")
    k = (n - 1).bit_length()
    while True:
        r = src.randbits(k)
        if r < n:
            return r


def bernoulli_rational(p: Fraction, src: IntSource) -> bool:
    """Bernoulli(p) for rational p in [0, 1]: U < p.numerator with U uniform below p.denominator."""
    return randbelow(p.denominator, src) < p.numerator


# --------------------------------------------------------------------------- exact samplers
def _rational(name: str, x: Rational, positive: bool) -> Fraction:
    """`x` as an exact Fraction (floats are converted exactly), checked finite and >0 / >=0."""
    if isinstance(x, bool) or not isinstance(x, Fraction | int | float):
        raise ConfigError(f"{name}: must be a number (got {x!r})")
    if isinstance(x, float) and not math.isfinite(x):
        raise ConfigError(f"{name}: must be finite (got {x!r})")
    f = Fraction(x)
    if f < 0 or (positive and f == 0):
        raise ConfigError(f"{name}: must be {'> 0' if positive else '>= 0'} (got {x!r})")
    return f


def _bernoulli_exp(num: int, den: int, src: IntSource) -> bool:
    """Bernoulli(exp(-num/den)) with integers only (the loop of CKS20 Algorithm 1)."""
    while num > den:  # exp(-γ) = exp(-1) exp(-(γ - 1))
        if not _bernoulli_exp(1, 1, src):
            return False
        num -= den
    k = 1
    while randbelow(den * k, src) < num:  # A_k ~ Bernoulli(γ/k)
        k += 1
    return k % 2 == 1


def bernoulli_exp(gamma: Rational, src: IntSource) -> bool:
    """Bernoulli(exp(-gamma)) exactly, gamma >= 0 rational (CKS20 Algorithm 1).

    gamma <= 1: draw A_k ~ Bernoulli(gamma / k) for k = 1, 2, ... until A_k = 0; return 1 iff
    the stopping k is odd (P = sum_k (-1)^(k+1) gamma^(k-1)/(k-1)! ... = exp(-gamma)).
    gamma > 1: exp(-gamma) = exp(-1)^floor(gamma) * exp(-(gamma - floor(gamma))).
    """
    g = _rational("gamma", gamma, positive=False)
    return _bernoulli_exp(g.numerator, g.denominator, src)


def discrete_laplace(scale: Rational, src: IntSource) -> int:
    """One draw of the discrete Laplace Lap_Z(scale): P(y) ∝ exp(-|y|/scale) (CKS20 Alg. 2).

    With scale = t/s (t, s positive integers): U ~ Unif{0..t-1} accepted w.p. exp(-U/t);
    V ~ Geometric (count successes of Bernoulli(exp(-1))); X = U + tV has P(x) ∝ exp(-x/t);
    Y = floor(X/s), a random sign, and reject (sign -, Y = 0) so that 0 is not counted twice.
    """
    b = _rational("scale", scale, positive=True)
    t, s = b.numerator, b.denominator
    while True:
        u = randbelow(t, src)
        if not _bernoulli_exp(u, t, src):
            continue
        v = 0
        while _bernoulli_exp(1, 1, src):
            v += 1
        y = (u + t * v) // s
        negative = src.randbits(1) == 1
        if negative and y == 0:
            continue
        return -y if negative else y


def discrete_gaussian(sigma2: Rational, src: IntSource) -> int:
    """One draw of N_Z(0, sigma2): P(y) ∝ exp(-y^2/(2 sigma2)) (CKS20 Algorithm 3).

    Propose Y ~ Lap_Z(t) with t = floor(sigma) + 1 and accept with probability
    exp(-(|Y| - sigma2/t)^2 / (2 sigma2)). `sigma2` is the scale parameter; the variance of
    N_Z(0, sigma2) is slightly below sigma2 (CKS20 Prop. 19).
    """
    v = _rational("sigma2", sigma2, positive=True)
    t = math.isqrt(math.floor(v)) + 1  # floor(sigma) + 1, exactly
    p, q = v.numerator, v.denominator
    while True:
        y = discrete_laplace(t, src)
        # γ = (|y| - v/t)² / (2v) = (|y| q t - p)² / (2 p q t²), in integers
        if _bernoulli_exp((abs(y) * q * t - p) ** 2, 2 * p * q * t * t, src):
            return y


def sample(sampler, param: Rational, size: int, source=None) -> np.ndarray:
    """`size` independent draws of `sampler(param)` as an int64 array (object if they overflow)."""
    src = as_source(source)
    draws = [sampler(param, src) for _ in range(int(size))]
    if all(-(2**63) <= y < 2**63 for y in draws):
        return np.asarray(draws, np.int64)
    return np.asarray(draws, object)


# --------------------------------------------------------------------------- exact pmfs (tests)
def discrete_laplace_pmf(y: np.ndarray, scale: float) -> np.ndarray:
    """P(Y = y) = (1 - q)/(1 + q) q^|y|, q = exp(-1/scale)."""
    q = math.exp(-1.0 / scale)
    return (1 - q) / (1 + q) * q ** np.abs(np.asarray(y, float))


def discrete_gaussian_pmf(y: np.ndarray, sigma2: float) -> np.ndarray:
    """P(Y = y) = exp(-y^2/(2 sigma2)) / sum_z exp(-z^2/(2 sigma2)) (normaliser summed to 40 sd)."""
    width = int(40 * math.sqrt(sigma2)) + 40
    z = np.arange(-width, width + 1, dtype=float)
    norm = np.exp(-(z**2) / (2 * sigma2)).sum()
    return np.exp(-(np.asarray(y, float) ** 2) / (2 * sigma2)) / norm


# --------------------------------------------------------------------------- float-safe mechanisms
def _to_grid(values: np.ndarray, k: int) -> list[int]:
    """Round each float to the nearest multiple of 2^-k, as an exact integer multiple."""
    out = []
    for v in np.asarray(values, float).ravel():
        if not math.isfinite(v):
            raise ConfigError(f"value: must be finite (got {v!r})")
        out.append(round(Fraction(v) * 2**k))  # Fraction is exact; round() is half-to-even
    return out


def laplace_grid_scale(sensitivity: float, epsilon: float, k: int, changed: int) -> Fraction:
    """Lap_Z scale in grid units for `laplace_mechanism`: (Δ 2^k + m)/ε, m = `changed`.

    Rounding to the grid moves a coordinate by at most half a step, so a coordinate whose value
    moves by δ_j between neighbours moves by at most δ_j 2^k + 1 grid steps; summed over the m
    coordinates that can move, the ℓ1 sensitivity in grid units is at most Δ 2^k + m.
    """
    sens = _rational("sensitivity", sensitivity, positive=True)
    eps = _rational("epsilon", epsilon, positive=True)
    if isinstance(changed, bool) or not isinstance(changed, int) or changed < 1:
        raise ConfigError(f"changed: must be an integer >= 1 (got {changed!r})")
    return (sens * 2**k + changed) / eps


def laplace_mechanism(
    values,
    sensitivity: float,
    epsilon: float,
    source=None,
    k: int = DEFAULT_GRID_K,
    changed: int | None = None,
) -> np.ndarray:
    """ε-DP release of `values` (ℓ1-sensitivity `sensitivity`) without float-noise leaks.

    Each coordinate is rounded to the grid 2^-k and gets independent Lap_Z(b 2^k) noise in grid
    units with b = (sensitivity + m 2^-k)/ε, m = `changed` (the coordinates a neighbour can
    change; None: all of them), the m grid steps covering rounding (`laplace_grid_scale`). Pure
    ε-DP for the neighbouring relation under which `sensitivity` and `changed` hold (GRS12;
    CKS20 §5.2).
    """
    grid = _to_grid(values, k)
    scale = laplace_grid_scale(sensitivity, epsilon, k, len(grid) if changed is None else changed)
    src = as_source(source)
    out = [float(Fraction(g + discrete_laplace(scale, src), 2**k)) for g in grid]
    return np.asarray(out).reshape(np.shape(values))


def gaussian_mechanism(
    values, l2_sensitivity: float, rho: float, source=None, k: int = DEFAULT_GRID_K
) -> np.ndarray:
    """ρ-zCDP release of `values` (ℓ2-sensitivity Δ) with exact discrete Gaussian noise.

    Coordinates are rounded to the grid 2^-k; in grid units the ℓ2-sensitivity is at most
    Δ 2^k + sqrt(dim) (rounding moves each coordinate by at most 1/2 on each side); noise is
    N_Z(0, σ^2) per coordinate with σ^2 = (Δ 2^k + sqrt(dim))^2 / (2ρ), which is ρ-zCDP
    (CKS20 Theorem 14, multivariate discrete Gaussian).
    """
    check_positive("l2_sensitivity", l2_sensitivity)
    check_positive("rho", rho)
    src = as_source(source)
    grid = _to_grid(values, k)
    root_dim = Fraction(math.isqrt(len(grid) - 1) + 1)  # an integer >= sqrt(dim)
    sens_grid = Fraction(l2_sensitivity) * 2**k + root_dim
    sigma2 = sens_grid**2 / (2 * Fraction(rho))
    out = [float(Fraction(g + discrete_gaussian(sigma2, src), 2**k)) for g in grid]
    return np.asarray(out).reshape(np.shape(values))


def check_positive(name: str, x) -> float:
    """`x` as a positive finite float, or ConfigError naming `name`."""
    ok = isinstance(x, int | float | Fraction) and not isinstance(x, bool)
    if not ok or not math.isfinite(float(x)) or float(x) <= 0:
        raise ConfigError(f"{name}: must be a finite number > 0 (got {x!r})")
    return float(x)


# --------------------------------------------------------------------------- research mode (JAX)
def research_gaussian(key: jax.Array, sigma: float | jax.Array, shape=()) -> jax.Array:
    """sigma * N(0, 1) in floating point (research mode; not safe against float attacks)."""
    return sigma * jax.random.normal(key, shape)


def research_laplace(key: jax.Array, scale: float | jax.Array, shape=()) -> jax.Array:
    """Laplace(0, scale) in floating point (research mode; not safe against float attacks)."""
    return scale * jax.random.laplace(key, shape)


def research_discrete_laplace(key: jax.Array, scale: float | jax.Array, shape=()) -> jax.Array:
    """Lap_Z(scale) as the difference of two geometric variables, computed in float.

    G = floor(log U / log q) with q = exp(-1/scale) is Geometric(1 - q) on {0, 1, ...}; G1 - G2
    has P(y) ∝ q^|y|. Float logs make this approximate (research mode only).
    """
    k1, k2 = jax.random.split(key)
    log_q = -1.0 / jnp.asarray(scale, jnp.result_type(float))
    g = [jnp.floor(jnp.log(jax.random.uniform(k, shape, minval=1e-38)) / log_q) for k in (k1, k2)]
    return (g[0] - g[1]).astype(jnp.result_type(int))
