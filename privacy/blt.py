"""Buffered linear Toeplitz (BLT) factorisations of the prefix-sum matrix: the strategy, its
inverse, its losses and the optimiser (the counter is `privacy.counters.BLTCounter`).

The strategy. A BLT with m buffers, output_scale s and buf_decay θ is the lower-triangular
Toeplitz C = Toeplitz(c) with

    c_0 = 1,   c_k = Σ_i s_i θ_i^{k-1} (k >= 1),   i.e.  C(x) = 1 + Σ_i s_i x / (1 - θ_i x)

(Dvijotham, McMahan, Pillutla, Steinke & Thakurta, "Efficient and near-optimal noise generation
for streaming differential privacy", FOCS 2024, arXiv:2404.16706, §5; jax_privacy
`buffered_toeplitz.BufferedToeplitz`). C x streams with m buffers:
y_t = x_t + Σ_i s_i β_{i,t}, β_{i,t+1} = θ_i β_{i,t} + x_t (McMahan, Xu & Zhang 2024,
arXiv:2408.08868, Alg. 2-3 [M: authors recalled; algorithm numbers from jax_privacy]).

The inverse is a BLT (arXiv:2404.16706 Lemma 5.2 and Prop. 5.6). Write C(x) = P(x)/Q(x) with
Q = Π_i (1 - θ_i x), P = Π_j (1 - φ_j x): the inverse decays φ are the eigenvalues of Θ - 1 sᵀ
(the streaming inverse x_t = y_t - sᵀβ_t, β_{t+1} = Θ β_t + x_t has that state matrix), the
roots of the secular equation 1 + Σ_i s_i/(φ - θ_i) = 0. For s > 0 they are real and interlace,
φ_1 < θ_1 < φ_2 < θ_2 < ... < φ_m < θ_m (θ ascending; the secular function runs from -inf to
+inf between consecutive poles), and by partial fractions

    C^{-1}(x) = 1 + Σ_j ŝ_j x / (1 - φ_j x),   ŝ_j = Π_i (φ_j - θ_i) / Π_{k≠j} (φ_j - φ_k) < 0,

and symmetrically s_i = Π_j (θ_i - φ_j) / Π_{k≠i} (θ_i - θ_k) ("An inversion theorem for BLT
matrices", arXiv:2504.21413, Thm 2, as cited by jax_privacy). det(Θ - 1 sᵀ) = Π θ (1 - Σ s/θ)
gives Π φ = Π θ (1 - Σ_i s_i/θ_i): all φ lie in (0, 1) iff the "Pillutla score" Σ s_i/θ_i < 1
(arXiv:2504.21413 Thm 1(a)); we require it, so that C^{-1} is a stable (decaying) BLT.

Losses (loss = sens² ‖B[t]‖², unit noise, as in jax_privacy's `matrix_factorization`).
B = A C^{-1} = Toeplitz(b) with

    b_k = Σ_{l<=k} ĉ_l = 1 + Σ_j ŝ_j (1 - φ_j^k)/(1 - φ_j) = a - Σ_j w_j φ_j^k,
    a = C^{-1}(1) = 1/C(1) = 1/(1 + Σ_i s_i/(1 - θ_i)),   w_j = ŝ_j/(1 - φ_j).

sens² = Σ_{k<n} c_k² (single participation: every column of C is a prefix of the first), and
‖B[t]‖² = Σ_{k<t} b_k² grows with t, so the max loss is sens² ‖B[n]‖² and the mean loss is
sens² (1/n) Σ_{k<n} (n - k) b_k² (arXiv:2404.16706 Lemmas 5.3, 5.4). The `BLT` methods compute
the losses from the coefficient vectors in O(n m) (float64, no dense matrices; sens² and sens1 in
closed form); the optimiser uses the same sums in closed form, O(m²), through
G(r, N) = Σ_{k<N} r^k and H(r, N) = Σ_{k<N} (N - k) r^k.

Optimiser (`optimize`): the objective of jax_privacy's `buffered_toeplitz.optimize`
(McMahan et al. 2024): the loss divided by 1 + (1 + ln n/π)², plus 10^-8 times the
log-barrier penalties of its `LossFn.compute_penalties` (θ, φ in (0, 1); s > 0, ŝ < 0; gaps
between decays > 10^-12; c_1 = Σ s < 1; Σ s/θ < 1). It is minimised over the interlaced pair
0 < φ_1 < θ_1 < ... < φ_m < θ_m < 1 (the θ-pair parameterisation of arXiv:2408.08868 Alg. 5,
jax_privacy's default `Parameterization.buf_decay_pair`), written as 2m + 1 positive gaps
g = softmax(0, x), x in R^{2m} unconstrained: then s > 0 and ŝ < 0 (the interlacing), Σ s =
Σθ - Σφ = g_1 + g_3 + ... < 1 and Π φ > 0 hold by construction, so every penalty is finite and
smooth, and 1 - θ, 1 - φ are tail sums of gaps (no cancellation near 1). The gradient is JAX's
in float64 (`jax.enable_x64` context; `jax.ensure_compile_time_eval` so that a call inside a
traced `init` still runs eagerly), the Hessian central differences of it; scipy's "trust-exact"
(Newton with a trust region) minimises. As in jax_privacy (which refuses BLTs without
`jax_enable_x64`), everything here is float64; float32 parameters raise ConfigError.

Golden (jax_privacy `tests/matrix_factorization/buffered_toeplitz_test.py`,
`test_optimize_single_participation_golden`): optimize(n=100000, buffers=2, error="max") gives
output_scale [0.0122853238, 0.1878393665], buf_decay [0.9999528892, 0.9857068667] to ~3e-7
relative (tests/test_privacy_blt.py); its max loss is 28.0555, vs 22.3819 (sqrt) and 272 (binary
tree).

The counter: `privacy.counters.BLTCounter` (strategy `privacy.counters.blt.BLTStrategy`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.config import ConfigError, check_choice, check_int
from privacy.factorization import check_horizon, toeplitz

MAX_BUFFERS = 10  # jax_privacy refuses > 15: optimisation becomes numerically unstable
ERRORS = ("max", "mean")
PENALTY = 1e-8  # jax_privacy LossFn.penalty_strength
MIN_GAP = 1e-12  # jax_privacy LossFn.min_theta_gap
_SERIES = 0.05  # r = 1 - δ with δN < this: Taylor series in δ (see `_geo`)
_TERMS = 10  # series terms: truncation < (δN)^10/10! < 1e-19 relative


def check_float64(name: str, values: Any) -> None:
    """BLT parameters must be float64 (decays near 1 lose 1 - θ in float32; jax_privacy too)."""
    dtype = getattr(values, "dtype", None)
    if dtype is None and isinstance(values, list | tuple) and values:
        dtype = getattr(values[0], "dtype", None)
    if dtype is not None and np.dtype(dtype).kind == "f" and np.dtype(dtype).itemsize < 8:
        raise ConfigError(
            f"{name}: float64 required (got {np.dtype(dtype).name}: a decay near 1 keeps only"
            " ~3 digits of 1 - θ in float32); pass Python floats or float64 arrays"
        )


def _floats(name: str, values: Any) -> tuple[float, ...]:
    check_float64(name, values)
    try:
        out = tuple(float(v) for v in np.asarray(values, np.float64).reshape(-1))
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: must be a list of numbers (got {values!r})") from None
    if np.ndim(values) != 1 or not all(math.isfinite(v) for v in out):
        raise ConfigError(f"{name}: must be a flat list of finite numbers (got {values!r})")
    return out


@dataclass(frozen=True)
class BLT:
    """C = Toeplitz(c), c_0 = 1, c_k = Σ_i output_scale_i buf_decay_i^{k-1} (float64).

    Any real parameters (the inverse of a strategy has negative scales); `check_strategy`
    validates a strategy. Numpy float64, O(n m) at most (no dense matrices but `dense`).
    """

    output_scale: tuple[float, ...]
    buf_decay: tuple[float, ...]

    def __post_init__(self):
        s = _floats("output_scale", self.output_scale)
        d = _floats("buf_decay", self.buf_decay)
        if len(s) != len(d):
            raise ConfigError(
                f"buf_decay: must have as many entries as output_scale ({len(d)} != {len(s)})"
            )
        object.__setattr__(self, "output_scale", s)
        object.__setattr__(self, "buf_decay", d)

    @property
    def buffers(self) -> int:
        return len(self.buf_decay)

    @property
    def scale(self) -> np.ndarray:
        return np.asarray(self.output_scale, np.float64)

    @property
    def decay(self) -> np.ndarray:
        return np.asarray(self.buf_decay, np.float64)

    def pillutla_score(self) -> float:
        """Σ_i s_i/θ_i (< 1 iff all inverse decays are positive, arXiv:2504.21413 Thm 1)."""
        return float(np.sum(self.scale / self.decay))

    def coefficients(self, n: int) -> np.ndarray:
        """c_0..c_{n-1}: the first column of C."""
        k = np.arange(check_horizon(n) - 1, dtype=np.float64)
        return np.concatenate([[1.0], _powers(self.decay, k) @ self.scale])

    def inverse(self) -> BLT:
        """The BLT of C^{-1}: decays φ (roots of 1 + Σ s_i/(φ - θ_i)), scales ŝ (docstring)."""
        s, th = self.scale, self.decay
        if self.buffers == 0:
            return self
        if np.any(s <= 0) or len(set(self.buf_decay)) < self.buffers:
            raise ConfigError("output_scale: inverse needs scales > 0 and distinct decays")
        phi = np.sort(np.linalg.eigvals(np.diag(th) - np.outer(np.ones_like(s), s)).real)
        secular = lambda p: 1 + np.sum(s / (p[:, None] - th[None, :]), 1)
        for _ in range(3):  # Newton on the secular equation polishes the eigenvalues
            step = secular(phi) / np.sum(s / (phi[:, None] - th[None, :]) ** 2, 1)
            new = phi + step
            better = np.abs(secular(new)) < np.abs(secular(phi))  # never a worse root
            phi = np.where(better & np.isfinite(new), new, phi)
        sh = np.prod(phi[:, None] - th[None, :], 1) / np.prod(
            phi[:, None] - phi[None, :] + np.eye(self.buffers), 1
        )
        return BLT(tuple(sh), tuple(phi))

    def noise_coefficients(self, n: int) -> np.ndarray:
        """b_0..b_{n-1}: the first column of B = A C^{-1}, b_k = 1 + Σ_j ŝ_j G(φ_j, k)."""
        inv = self.inverse()
        k = np.arange(check_horizon(n), dtype=np.float64)
        gap = 1.0 - inv.decay
        if np.all(inv.decay > 0):
            geo = -np.expm1(k[:, None] * np.log1p(-gap)[None, :]) / gap  # Σ_{l<k} φ^l
        else:
            geo = (1.0 - _powers(inv.decay, k)) / gap
        return 1.0 + geo @ inv.scale

    def sens2(self, n: int) -> float:
        """Σ_{k<n} c_k² = 1 + Σ_{ij} s_i s_j G(θ_i θ_j, n - 1): the squared norm of C's first
        (longest) column, in O(m²) (arXiv:2404.16706 Lemma 5.3); decays in (0, 1)."""
        n = check_horizon(n)
        d = 1.0 - self.decay
        if not np.all((d > 0) & (d < 1)):
            return float(np.sum(self.coefficients(n) ** 2))
        pair = d[:, None] + d[None, :] - d[:, None] * d[None, :]  # 1 - θ_i θ_j
        return float(1.0 + np.sum(np.outer(self.scale, self.scale) * _geometric(pair, n - 1)))

    def sens1(self, n: int) -> float:
        """Σ_{k<n} |c_k| = 1 + Σ_i s_i G(θ_i, n - 1) when every scale is > 0, in O(m)."""
        n = check_horizon(n)
        d = 1.0 - self.decay
        if not (np.all(self.scale > 0) and np.all((d > 0) & (d < 1))):
            return float(np.sum(np.abs(self.coefficients(n))))
        return float(1.0 + np.sum(self.scale * _geometric(d, n - 1)))

    def row_norms2(self, n: int) -> np.ndarray:
        """‖B[t]‖² = Σ_{k<t} b_k², t = 1..n."""
        return np.cumsum(self.noise_coefficients(n) ** 2)

    def loss(self, n: int) -> np.ndarray:
        """Per-step loss sens² ‖B[t]‖², t = 1..n (variance at ρ = 1/2)."""
        return self.sens2(n) * self.row_norms2(n)

    def max_loss(self, n: int) -> float:
        return float(self.loss(n)[-1])  # Toeplitz: ‖B[t]‖² is non-decreasing in t

    def mean_loss(self, n: int) -> float:
        return float(self.loss(n).mean())

    def dense(self, n: int) -> np.ndarray:
        """C as a dense n x n matrix (tests; small n)."""
        return toeplitz(self.coefficients(n))


def _geometric(delta: np.ndarray, N: int) -> np.ndarray:
    """G(1 - δ, N) = Σ_{k<N} (1 - δ)^k = -expm1(N log1p(-δ))/δ, δ in (0, 1): relative
    accuracy ~eps for every δ (expm1 and log1p are accurate near 0)."""
    return -np.expm1(N * np.log1p(-delta)) / delta


def _powers(decay: np.ndarray, k: np.ndarray) -> np.ndarray:
    """decay^k, (len(k), m), via exp(k log θ) (θ > 0) or plain powers."""
    if np.all(decay > 0):
        return np.exp(k[:, None] * np.log(decay)[None, :])
    return decay[None, :] ** k[:, None]


def check_strategy(output_scale: Any, buf_decay: Any) -> BLT:
    """A BLT usable as the counter's strategy, or ConfigError naming the field."""
    blt = BLT(output_scale, buf_decay)
    if blt.buffers < 1:
        raise ConfigError("output_scale: needs at least one buffer (got an empty list)")
    if np.any(blt.decay <= 0) or np.any(blt.decay >= 1):
        raise ConfigError(f"buf_decay: every decay must lie in (0, 1) (got {list(blt.buf_decay)})")
    if np.any(blt.scale <= 0):
        raise ConfigError(f"output_scale: every scale must be > 0 (got {list(blt.output_scale)})")
    d = np.sort(blt.decay)
    if blt.buffers > 1 and np.min(np.diff(d)) < 1e-9:
        raise ConfigError(
            f"buf_decay: decays must differ by >= 1e-9 (got {list(blt.buf_decay)}); merge buffers"
        )
    if blt.pillutla_score() >= 1:
        raise ConfigError(
            f"output_scale: Σ output_scale/buf_decay = {blt.pillutla_score():.4g} must be < 1"
            " (else C^{-1} has a decay <= 0; arXiv:2504.21413 Thm 1)"
        )
    return blt


# --------------------------------------------------------------------------- closed forms (JAX)
def _geo(delta: jax.Array, N: jax.Array) -> jax.Array:
    """G = Σ_{k<N} (1 - δ)^k = -expm1(N log1p(-δ))/δ; for δN < 0.05 the series
    Σ_j (-δ)^j C(N, j+1), whose terms shrink by δN/2 or more (the direct form's gradient
    loses ~eps/(δN) there)."""
    small = delta * N < _SERIES
    d = jnp.where(small, _SERIES / N, delta)
    direct = -jnp.expm1(N * jnp.log1p(-d)) / d
    term, series = N, N
    for j in range(_TERMS):
        term = term * (-delta) * (N - j - 1) / (j + 2)
        series = series + term
    return jnp.where(small, series, direct)


def _geo2(delta: jax.Array, N: jax.Array) -> jax.Array:
    """H = Σ_{k<N} (N - k)(1 - δ)^k = (N - (1 - δ) G)/δ = Σ_j (-δ)^j C(N+1, j+2)."""
    small = delta * N < _SERIES
    d = jnp.where(small, _SERIES / N, delta)
    direct = (N - (1 - d) * _geo(d, N)) / d
    term = N * (N + 1) / 2
    series = term
    for j in range(_TERMS):
        term = term * (-delta) * (N - j - 1) / (j + 3)
        series = series + term
    return jnp.where(small, series, direct)


def _pair(x: jax.Array, m: int):
    """x (2m) -> interlaced (δθ, δφ, s, ŝ, gaps): gaps g = softmax(0, x) between
    0 < φ_1 < θ_1 < ... < φ_m < θ_m < 1; δ = 1 - decay as tail sums of gaps."""
    g = jax.nn.softmax(jnp.concatenate([jnp.zeros(1, x.dtype), x]))
    tail = jnp.cumsum(g[::-1])[::-1][1:]  # 1 - q_k for the 2m points q_1 < ... < q_2m
    dphi, dth = tail[0::2], tail[1::2]
    eye = jnp.eye(m, dtype=x.dtype)
    # log|s_i| = Σ_j log|θ_i - φ_j| - Σ_{k≠i} log|θ_i - θ_k|, with θ_i - φ_j = δφ_j - δθ_i
    log_s = jnp.sum(jnp.log(jnp.abs(dphi[None, :] - dth[:, None])), 1) - jnp.sum(
        jnp.log(jnp.abs(dth[None, :] - dth[:, None]) + eye), 1
    )
    log_sh = jnp.sum(jnp.log(jnp.abs(dth[None, :] - dphi[:, None])), 1) - jnp.sum(
        jnp.log(jnp.abs(dphi[None, :] - dphi[:, None]) + eye), 1
    )
    return dth, dphi, jnp.exp(log_s), -jnp.exp(log_sh), g, log_s, log_sh


def _losses(x: jax.Array, n: jax.Array, m: int) -> tuple[jax.Array, jax.Array]:
    """(max loss, mean loss) of the BLT with parameters x at horizon n, closed forms O(m²)."""
    dth, dphi, s, sh, _, _, _ = _pair(x, m)
    pair = lambda d: d[:, None] + d[None, :] - d[:, None] * d[None, :]  # 1 - r_i r_j
    sens2 = 1.0 + jnp.sum(jnp.outer(s, s) * _geo(pair(dth), n - 1))
    a = 1.0 / (1.0 + jnp.sum(s / dth))  # b_k -> a = 1/C(1)
    w = sh / dphi  # b_k = a - Σ_j w_j φ_j^k
    ww = jnp.outer(w, w)
    err_max = n * a**2 - 2 * a * jnp.sum(w * _geo(dphi, n)) + jnp.sum(ww * _geo(pair(dphi), n))
    err_mean = (
        a**2 * n * (n + 1) / 2
        - 2 * a * jnp.sum(w * _geo2(dphi, n))
        + jnp.sum(ww * _geo2(pair(dphi), n))
    ) / n
    return sens2 * err_max, sens2 * err_mean


def _penalties(x: jax.Array, m: int) -> jax.Array:
    """jax_privacy `LossFn.compute_penalties` (single participation), in the gap form."""
    dth, dphi, _, _, g, log_s, log_sh = _pair(x, m)
    pen = -jnp.sum(jnp.log1p(-dth)) - jnp.sum(jnp.log(dth)) - jnp.sum(log_s)  # θ in (0,1), s > 0
    pen += -jnp.sum(jnp.log1p(-dphi)) - jnp.sum(jnp.log(dphi)) - jnp.sum(log_sh)  # φ, ŝ < 0
    if m > 1:  # adjacent gaps of the sorted θ (and φ): g_2 + g_3, g_4 + g_5, ... (g_1 + g_2, ...)
        pen -= jnp.log(jnp.min(g[2:-1:2] + g[3::2]) - MIN_GAP)
        pen -= jnp.log(jnp.min(g[1:-2:2] + g[2:-1:2]) - MIN_GAP)
    pen -= jnp.log(jnp.sum(g[0::2]))  # 1 - c_1 = 1 - Σ s = g_0 + g_2 + ... + g_2m
    pen -= jnp.sum(jnp.log1p(-dphi)) - jnp.sum(jnp.log1p(-dth))  # 1 - Σ s/θ = Π φ / Π θ
    return pen


def _objective(x: jax.Array, n: jax.Array, m: int, error: str) -> jax.Array:
    loss = _losses(x, n, m)[0 if error == "max" else 1]
    return loss / (2.0 + jnp.log(n) / np.pi * (2.0 + jnp.log(n) / np.pi)) + PENALTY * _penalties(
        x, m
    )  # normaliser: max_participations + (1 + ln n/π)² = 1 + (1 + ln n/π)²


@functools.cache
def _compiled(m: int, error: str):
    """jit'd value-and-gradient of the objective; n is traced (one compile per (m, error))."""
    return jax.jit(jax.value_and_grad(functools.partial(_objective, m=m, error=error)))


def _hessian(grad, x: np.ndarray, step: float = 1e-4) -> np.ndarray:
    """Central differences of the exact gradient (error ~ step² |∇³f| + eps |∇f|/step ~ 1e-8
    relative): cheaper to build than JAX's Hessian (one compile fewer), and Newton's method
    needs only an approximate Hessian."""
    cols = [(grad(x + step * e) - grad(x - step * e)) / (2 * step) for e in np.eye(x.size)]
    H = np.stack(cols, 1)
    return (H + H.T) / 2


def _init_x(n: int, m: int) -> np.ndarray:
    """Start: 1 - q geometric from 1/2 down to ~8/n (as the optimum spreads its decays)."""
    r = min(0.5, (8.0 / n) ** (1.0 / max(2 * m - 1, 1)))
    q = 1.0 - 0.5 * r ** np.arange(2 * m)
    g = np.diff(np.concatenate([[0.0], q, [1.0]]))
    return np.log(g[1:] / g[0])


def _blt_from_x(x: np.ndarray, m: int) -> BLT:
    dth, _, s, _, _, _, _ = (np.asarray(v, np.float64) for v in _pair(jnp.asarray(x), m))
    order = np.argsort(dth)  # decreasing decay (jax_privacy's canonical order)
    return BLT(tuple(s[order]), tuple(1.0 - dth[order]))


def optimize(n: int, buffers: int = 2, error: str = "max") -> BLT:
    """The BLT with `buffers` buffers minimising the max (or mean) loss at horizon n (module
    docstring: jax_privacy's objective, θ-pair parameterisation, trust-region Newton, float64).

    n = 1: every BLT has loss 1; returns the starting point."""
    n = check_horizon(n)
    m = check_int("buffers", buffers, 1, MAX_BUFFERS)
    error = check_choice("error", error, ERRORS)
    return _optimize(n, m, error)


def _x64():
    """Context manager turning float64 on (jax.enable_x64 in JAX >= 0.7, else experimental)."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # older JAX

    return enable_x64()


@functools.lru_cache(maxsize=64)
def _optimize(n: int, m: int, error: str) -> BLT:
    import scipy.optimize

    x0 = _init_x(n, m)
    with _x64(), jax.ensure_compile_time_eval():
        if jnp.zeros(()).dtype != jnp.float64:  # never expected: enable_x64 is in force
            raise ConfigError("x64: BLT optimisation needs float64 (jax_enable_x64)")
        if n == 1:
            return _blt_from_x(x0, m)
        vg = _compiled(m, error)
        nn = np.float64(n)
        grad = lambda x: np.asarray(vg(x, nn)[1])
        res = scipy.optimize.minimize(
            lambda x: tuple(np.asarray(v) for v in vg(x, nn)),
            x0,
            jac=True,
            hess=lambda x: _hessian(grad, x),
            method="trust-exact",
            options={"gtol": 1e-10, "maxiter": 500},
        )
        # trust-exact may stop at float64 resolution ("a bad approximation ...") with a tiny
        # gradient: any finite point it returns is its best one
        if not np.all(np.isfinite(res.x)) or not np.isfinite(res.fun):
            raise RuntimeError(f"BLT optimisation failed at n = {n}, buffers = {m}: {res}")
        return _blt_from_x(res.x, m)
