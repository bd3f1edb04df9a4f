"""Continual counting as a factorisation A = B C of the prefix-sum matrix, and exact variance
oracles computed from the factorisation (loss conventions as jax_privacy's
`matrix_factorization`: loss = sens(C)² error(B)).

The mechanism releases B(Cx + z), z ~ N(0, σ² I): sens² = max_j ‖C[:, j]‖² (event-level, one
stream element changes by at most 1) and the per-step error variance is ‖B[t, :]‖² σ². The
*loss* is sens² ‖B[t, :]‖² (unit privacy: variance = loss/(2ρ) under ρ-zCDP).

Tree mechanisms. Leaves are numbered 1, 2, ...; a node (b, m) at level b with index m >= 1
covers leaves ((m-1) 2^b, m 2^b]. Input s sits at leaf p_s and the output at t is the sum of
leaves [1, e_t] (p_s <= e_t iff s <= t). That prefix is the disjoint union of the nodes
(b, e_t >> b) over the set bits b of e_t, so output t sums popcount(e_t) noisy nodes:

* binary tree (Dwork, Naor, Pitassi & Rothblum 2010; Chan, Shi & Song 2011, §3.4):
  p_t = e_t = t, depth ⌊log2 T⌋ + 1;
* smooth binary mechanism (Andersson & Pagh, NeurIPS 2023, arXiv:2306.09666, §3; noise order
  as in jodander/smooth-binary-mechanism `smooth_binary_mechanism_noise`): with w_1 < w_2 < ...
  the integers of Hamming weight D/2 (D the smallest even number with C(D, D/2) > T), output t
  covers e_t = w_{t+1} and input t sits at p_t = w_t + 1 (0-indexed leaf w_t). Every output
  sums D/2 nodes; an input lies only in used nodes where its (balanced) path turns left, so in
  at most D/2 of them. Reconstructed (not stated in the paper): this placement is ours, from
  the code and the abstract; the paper calibrates to sens² = D/2, which `smooth_loss` uses
  (the truncated tree's exact column norm can be smaller, see `tree_loss`);
* Honaker's variance-reduced tree, online variant (Honaker, TPDP 2015; the recursion of TF
  Privacy's `EfficientTreeAggregator`): every completed node is noised; a node's estimate is
  the inverse-variance combination of its own noisy sum and the sum of its children's estimates.

Toeplitz square root (Fichtenberger, Henzinger & Upadhyay, ICML 2023, §3; Henzinger, Upadhyay &
Upadhyay, SODA 2023): B = C = Toeplitz(f), f_k = C(2k, k)/4^k, so C² = A.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from experiments.config import ConfigError


def check_horizon(T) -> int:
    if isinstance(T, bool) or not isinstance(T, int | np.integer) or T < 1:
        raise ConfigError(f"horizon: must be an integer >= 1 (got {T!r})")
    return int(T)


def prefix_matrix(T: int) -> np.ndarray:
    """A = lower-triangular all-ones T x T: (Ax)_t = x_1 + ... + x_t."""
    return np.tril(np.ones((check_horizon(T), T)))


# --------------------------------------------------------------------------- leaf maps
def binary_depth(T: int) -> int:
    """Levels of the binary tree: ⌊log2 T⌋ + 1 (TF `tree_aggregation_accountant`)."""
    return check_horizon(T).bit_length()


def smooth_depth(T: int) -> int:
    """The smallest even D with C(D, D/2) > T (Andersson & Pagh 2023; jodander reference)."""
    check_horizon(T)
    D = 2
    while math.comb(D, D // 2) <= T:
        D += 2
    return D


def binary_leaves(T: int) -> tuple[np.ndarray, np.ndarray]:
    """(ends e_t, input positions p_t) of the binary tree: both t."""
    t = np.arange(1, check_horizon(T) + 1, dtype=np.int64)
    return t, t


def balanced_numbers(T: int) -> np.ndarray:
    """The first T + 1 positive integers of Hamming weight D/2, in increasing order."""
    D = smooth_depth(T)
    cand = np.arange(1 << D, dtype=np.int64)
    return cand[np.bitwise_count(cand) == D // 2][: T + 1]


def smooth_leaves(T: int) -> tuple[np.ndarray, np.ndarray]:
    """(ends e_t, input positions p_t) of the smooth binary mechanism, t = 1..T."""
    w = balanced_numbers(T)
    return w[1:], w[:-1] + 1


def next_same_weight(x: int) -> int:
    """The next integer with the same Hamming weight (Gosper's hack, HAKMEM item 175)."""
    lsb = x & -x
    y = x + lsb
    return y + ((y & -y) // (2 * lsb)) - 1


# --------------------------------------------------------------------------- dense factorisations
@dataclass(frozen=True)
class Factorisation:
    """Dense B (T x n) and C (n x T) with B C = A (small T only: tests and checks)."""

    B: np.ndarray
    C: np.ndarray

    @property
    def sens2(self) -> float:
        return float(np.max(np.sum(self.C**2, axis=0)))

    def loss(self) -> np.ndarray:
        """Per-step loss sens² ‖B[t, :]‖², t = 1..T."""
        return self.sens2 * np.sum(self.B**2, axis=1)


def tree_factorisation(ends: np.ndarray, positions: np.ndarray) -> Factorisation:
    """B, C of the tree mechanism with output ends e_t and input leaves p_t (used nodes only)."""
    ends, positions = np.asarray(ends, np.int64), np.asarray(positions, np.int64)
    depth = int(ends.max()).bit_length()
    nodes: dict[tuple[int, int], int] = {}
    rows = []
    for lt in ends:
        row = []
        for b in range(depth):
            if (lt >> b) & 1:
                row.append(nodes.setdefault((b, int(lt >> b)), len(nodes)))
        rows.append(row)
    T, n = ends.size, len(nodes)
    B = np.zeros((T, n))
    for t, row in enumerate(rows):
        B[t, row] = 1.0
    C = np.zeros((n, T))
    for (b, m), j in nodes.items():
        C[j] = ((positions > (m - 1) << b) & (positions <= m << b)).astype(float)
    return Factorisation(B, C)


def honaker_weights(levels: int) -> np.ndarray:
    """a_j = weight of a level-j node's own noisy sum; var_j = a_j (unit node noise).

    var_0 = 1; a_j = 2 var_{j-1} / (2 var_{j-1} + 1) (inverse-variance weights of the node's
    own sum, variance 1, against its two children's estimates, variance 2 var_{j-1}).
    """
    a = np.ones(levels)
    for j in range(1, levels):
        a[j] = 2 * a[j - 1] / (2 * a[j - 1] + 1)
    return a


def honaker_factorisation(T: int) -> Factorisation:
    """B, C of the online Honaker tree: C has every completed node, B the online estimates."""
    T = check_horizon(T)
    levels = binary_depth(T)
    a = honaker_weights(levels)
    nodes = [(j, m) for j in range(levels) for m in range(1, (T >> j) + 1)]
    index = {node: i for i, node in enumerate(nodes)}
    s = np.arange(1, T + 1)
    C = np.stack([((s > (m - 1) << j) & (s <= m << j)).astype(float) for j, m in nodes])
    est: dict[tuple[int, int], np.ndarray] = {}
    for j, m in nodes:  # level by level: children come first
        e = np.zeros(len(nodes))
        e[index[(j, m)]] = a[j]
        if j > 0:
            e += (1 - a[j]) * (est[(j - 1, 2 * m - 1)] + est[(j - 1, 2 * m)])
        est[(j, m)] = e
    B = np.stack(
        [sum(est[(j, t >> j)] for j in range(levels) if (t >> j) & 1) for t in range(1, T + 1)]
    )
    return Factorisation(B, C)


def sqrt_coefficients(T: int) -> np.ndarray:
    """f_0 = 1, f_k = f_{k-1} (1 - 1/(2k)) = C(2k, k)/4^k: the Toeplitz square root of A."""
    k = np.arange(1, check_horizon(T))
    return np.concatenate([[1.0], np.cumprod(1 - 1 / (2 * k))])


def toeplitz(coefs: np.ndarray) -> np.ndarray:
    """Lower-triangular Toeplitz matrix with first column `coefs`."""
    T = coefs.size
    i, j = np.indices((T, T))
    return np.where(i >= j, coefs[np.clip(i - j, 0, T - 1)], 0.0)


def series_inverse(c: np.ndarray, n: int) -> np.ndarray:
    """First n coefficients of 1/c(x) for a power series with c_0 != 0 (float64).

    Newton's iteration h <- h (2 - c h) mod x^m, m doubling (each step doubles the number of
    correct coefficients), with FFT products: O(n log n). Equals the first column of
    Toeplitz(c)^{-1}.
    """
    from scipy.signal import fftconvolve

    c = np.asarray(c, np.float64)
    h = np.array([1.0 / c[0]])
    m = 1
    while m < n:
        m = min(2 * m, n)
        e = -fftconvolve(c[:m], h)[:m]
        e[0] += 2.0
        h = fftconvolve(h, e)[:m]
    return h[:n]


@functools.lru_cache(maxsize=32)
def quantised_sqrt(T: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer square-root strategy for exact (secure) noise: (c̃, b̃).

    c̃_k = round(2^bits f_k) (int64; any integers give a valid strategy C̃ = Toeplitz(c̃), whose
    exact sens² is Σ c̃_k²), and b̃ = first column of B̃ = A C̃^{-1} (float64), so that
    B̃ C̃ = A: b̃ = cumsum of the series inverse of c̃. b̃ ≈ 2^-bits f.
    """
    c = np.round(np.ldexp(sqrt_coefficients(T), bits)).astype(np.int64)
    b = np.cumsum(series_inverse(c.astype(np.float64), T))
    c.setflags(write=False)
    b.setflags(write=False)
    return c, b


def sqrt_factorisation(T: int) -> Factorisation:
    C = toeplitz(sqrt_coefficients(T))
    return Factorisation(C, C)


# --------------------------------------------------------------------------- scalable oracles
def tree_sens2(ends: np.ndarray, positions: np.ndarray) -> float:
    """Exact sens² = max_s #(used nodes containing p_s), without dense matrices.

    Node (b, m) is used iff m = e_t >> b for some t with bit b of e_t set.
    """
    ends, positions = np.asarray(ends, np.int64), np.asarray(positions, np.int64)
    count = np.zeros(positions.size, np.int64)
    for b in range(int(ends.max()).bit_length()):
        used = np.unique(ends[(ends >> b) & 1 == 1] >> b)
        containing = -((-positions) >> b)  # ceil(p / 2^b): the level-b node holding leaf p
        count += np.isin(containing, used)
    return float(count.max())


def tree_loss(ends: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Per-step loss sens² popcount(e_t) of a tree mechanism (‖B[t]‖² = popcount: 0/1 nodes)."""
    return tree_sens2(ends, positions) * np.bitwise_count(np.asarray(ends, np.int64)).astype(float)


def smooth_loss(T: int) -> np.ndarray:
    """Per-step loss of the smooth binary mechanism as calibrated by Andersson & Pagh: sens² =
    D/2 (a bound on `tree_sens2`, equal to it for T near C(D, D/2)) times D/2 nodes = D²/4."""
    D = smooth_depth(T)
    return np.full(T, D * D / 4)


def honaker_loss(T: int) -> np.ndarray:
    """Per-step loss of the online Honaker tree: L * sum_{bits j of t} ‖est_j‖².

    ‖est_j‖² follows the estimator recursion: v_0 = 1, v_j = a_j² + (1 - a_j)² 2 v_{j-1}.
    sens² = L: input 1 lies in one completed node per level.
    """
    levels = binary_depth(T)
    a = honaker_weights(levels)
    v = np.ones(levels)
    for j in range(1, levels):
        v[j] = a[j] ** 2 + (1 - a[j]) ** 2 * 2 * v[j - 1]
    t = np.arange(1, T + 1, dtype=np.int64)
    bits = (t[:, None] >> np.arange(levels)) & 1
    return levels * (bits @ v)


def sqrt_loss(T: int) -> np.ndarray:
    """Per-step loss of the square-root factorisation: s_T s_t, s_t = sum_{k<t} f_k²."""
    s = np.cumsum(sqrt_coefficients(T) ** 2)
    return s[-1] * s


def nuclear_lower_bound(T: int) -> float:
    """(‖A‖_*/T)²: no factorisation has a smaller mean loss (from γ_F(A) >= ‖A‖_*/√T, Henzinger,
    Upadhyay & Upadhyay, SODA 2023 [recalled, our reading]).

    Singular values of A: 1 / (2 sin((2j-1)π / (2(2T+1)))), j = 1..T.
    """
    j = np.arange(1, check_horizon(T) + 1)
    nuc = np.sum(1 / (2 * np.sin((2 * j - 1) * np.pi / (2 * (2 * T + 1)))))
    return float((nuc / T) ** 2)


MECHANISMS = ("binary", "honaker", "smooth", "sqrt")


def loss(mechanism: str, T: int) -> np.ndarray:
    """Exact per-step loss (variance at ρ = 1/2) of a mechanism, t = 1..T."""
    if mechanism == "binary":
        return tree_loss(*binary_leaves(T))
    if mechanism == "smooth":
        return smooth_loss(T)
    if mechanism == "honaker":
        return honaker_loss(T)
    if mechanism == "sqrt":
        return sqrt_loss(T)
    raise ConfigError(f"mechanism: must be one of {', '.join(MECHANISMS)} (got {mechanism!r})")


def factorisation(mechanism: str, T: int) -> Factorisation:
    """Dense factorisation (small T)."""
    if mechanism == "binary":
        return tree_factorisation(*binary_leaves(T))
    if mechanism == "smooth":
        return tree_factorisation(*smooth_leaves(T))
    if mechanism == "honaker":
        return honaker_factorisation(T)
    if mechanism == "sqrt":
        return sqrt_factorisation(T)
    raise ConfigError(f"mechanism: must be one of {', '.join(MECHANISMS)} (got {mechanism!r})")
