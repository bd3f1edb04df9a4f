"""Privacy accounting: pure ε-DP and ρ-zCDP guarantees, composition, calibration, and conversion
to approximate (ε, δ)-DP.

* Pure ε-DP implies (ε²/2)-zCDP (Bun & Steinke, TCC 2016, Prop. 1.4).
* zCDP composes additively (Bun & Steinke 2016, Lemma 2.3); pure DP composes additively.
* ρ-zCDP implies (ε, δ)-DP with ε = ρ + 2 sqrt(ρ ln(1/δ)) (Bun & Steinke 2016, Prop. 1.3).
* Tighter: δ(ε) = inf_{α>1} exp((α-1)(αρ-ε)) / (α-1) * (1 - 1/α)^α (Canonne, Kamath & Steinke,
  NeurIPS 2020, Corollary 13; recalled, then checked: the tests find it between the exact
  Gaussian-mechanism curve (Balle & Wang 2018, Thm 8) and the Bun–Steinke bound, and its ε equal
  to `dp_accounting`'s RDP conversion (CKS20 Prop. 12) with ε(α) = ρα to 1e-5).
* Calibration: Gaussian σ = Δ2 / sqrt(2ρ) (so σ² = Δ2²/(2ρ)), Laplace b = Δ1 / ε.

Every guarantee names the neighbouring relation it holds for (`Neighbouring`): sensitivities
are properties of a query *and* a relation, so the relation is an explicit parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import optimize
from scipy.stats import norm

from experiments.config import ConfigError

NEIGHBOURING = ("event", "user")


@dataclass(frozen=True)
class Neighbouring:
    """Which inputs are neighbours.

    ``event``: streams (or datasets) that differ in one element x_t, each element within the
    declared bound (replace-one, "event-level" of Dwork et al. 2010). ``user``: streams that
    differ in up to `participations` elements (one user's contributions; "user-level").
    """

    kind: str = "event"
    participations: int = 1

    def __post_init__(self):
        if self.kind not in NEIGHBOURING:
            raise ConfigError(
                f"neighbouring: must be one of {', '.join(NEIGHBOURING)} (got {self.kind!r})"
            )
        p = self.participations
        if isinstance(p, bool) or not isinstance(p, int) or p < 1:
            raise ConfigError(f"participations: must be an integer >= 1 (got {p!r})")
        if self.kind == "event" and p != 1:
            raise ConfigError(f"participations: event-level means 1 (got {p})")

    def describe(self) -> str:
        if self.kind == "event":
            return "event-level: neighbours differ in one stream element"
        return f"user-level: neighbours differ in up to {self.participations} stream elements"


def _positive(name: str, x) -> float:
    ok = isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0
    if not ok:
        raise ConfigError(f"{name}: must be a finite number > 0 (got {x!r})")
    return float(x)


def check_delta(delta) -> float:
    """δ in [0, 1), or ConfigError naming `delta`."""
    ok = isinstance(delta, int | float) and not isinstance(delta, bool) and math.isfinite(delta)
    if not ok or not 0 <= delta < 1:
        raise ConfigError(f"delta: must be a number in [0, 1) (got {delta!r})")
    return float(delta)


@dataclass(frozen=True)
class PureDP:
    """ε-differential privacy (δ = 0) under `neighbouring`."""

    epsilon: float
    neighbouring: Neighbouring = Neighbouring()

    def __post_init__(self):
        _positive("epsilon", self.epsilon)

    def compose(self, other: PureDP) -> PureDP:
        _same_relation(self.neighbouring, other.neighbouring)
        return PureDP(self.epsilon + other.epsilon, self.neighbouring)

    def to_zcdp(self) -> ZCDP:
        """ε-DP ⇒ (ε²/2)-zCDP (Bun & Steinke 2016, Prop. 1.4)."""
        return ZCDP(self.epsilon**2 / 2, self.neighbouring)


@dataclass(frozen=True)
class ZCDP:
    """ρ-zero-concentrated differential privacy (Bun & Steinke 2016, Def. 1.1)."""

    rho: float
    neighbouring: Neighbouring = Neighbouring()

    def __post_init__(self):
        _positive("rho", self.rho)

    def compose(self, other: ZCDP) -> ZCDP:
        _same_relation(self.neighbouring, other.neighbouring)
        return ZCDP(self.rho + other.rho, self.neighbouring)

    def epsilon_bun_steinke(self, delta: float) -> float:
        """ε = ρ + 2 sqrt(ρ ln(1/δ)) (Bun & Steinke 2016, Prop. 1.3)."""
        return zcdp_to_dp_bun_steinke(self.rho, delta)

    def epsilon(self, delta: float) -> float:
        """The smallest ε with δ_CKS(ε) <= δ (Canonne, Kamath & Steinke 2020, Cor. 13)."""
        return zcdp_to_dp_cks(self.rho, delta)


def _same_relation(a: Neighbouring, b: Neighbouring) -> None:
    if a != b:
        raise ConfigError(f"neighbouring: cannot compose guarantees for {a} and {b}")


def zcdp_to_dp_bun_steinke(rho: float, delta: float) -> float:
    """ε = ρ + 2 sqrt(ρ ln(1/δ)) for δ in (0, 1) (Bun & Steinke 2016, Prop. 1.3)."""
    rho = _positive("rho", rho)
    delta = check_delta(delta)
    if delta == 0:
        raise ConfigError("delta: must be > 0 to convert zCDP to (ε, δ)-DP (got 0)")
    return rho + 2 * math.sqrt(rho * math.log(1 / delta))


def cks_delta(rho: float, epsilon: float) -> float:
    """δ(ε) = inf_{α>1} exp((α-1)(αρ-ε)) (1-1/α)^α / (α-1) (CKS20 Cor. 13), minimised in log α."""
    rho = _positive("rho", rho)
    if not math.isfinite(epsilon) or epsilon < 0:
        raise ConfigError(f"epsilon: must be a finite number >= 0 (got {epsilon!r})")

    def log_delta(log_a_minus_1: float) -> float:
        am1 = math.exp(log_a_minus_1)
        a = 1 + am1
        return am1 * (a * rho - epsilon) - math.log(am1) + a * math.log1p(-1 / a)

    # (α-1)(αρ-ε) is minimised near α = (ε/ρ + 1)/2; search log(α-1) on a wide bracket.
    res = optimize.minimize_scalar(log_delta, bounds=(-30.0, 30.0), method="bounded")
    return min(1.0, math.exp(min(res.fun, log_delta(0.0))))


def zcdp_to_dp_cks(rho: float, delta: float) -> float:
    """The smallest ε with cks_delta(ρ, ε) <= δ (bisection; cks_delta is decreasing in ε)."""
    delta = check_delta(delta)
    if delta == 0:
        raise ConfigError("delta: must be > 0 to convert zCDP to (ε, δ)-DP (got 0)")
    hi = zcdp_to_dp_bun_steinke(rho, delta)  # the CKS bound is never worse
    if cks_delta(rho, 0.0) <= delta:
        return 0.0
    return optimize.brentq(lambda e: cks_delta(rho, e) - delta, 0.0, hi, xtol=1e-12, rtol=1e-12)


def gaussian_mechanism_delta(sigma: float, l2_sensitivity: float, epsilon: float) -> float:
    """Exact δ(ε) of the Gaussian mechanism (Balle & Wang, ICML 2018, Theorem 8).

    δ = Φ(Δ/(2σ) - εσ/Δ) - e^ε Φ(-Δ/(2σ) - εσ/Δ). Used as an independent lower reference.
    """
    s, d = _positive("sigma", sigma), _positive("l2_sensitivity", l2_sensitivity)
    a, b = d / (2 * s), epsilon * s / d
    return float(norm.cdf(a - b) - math.exp(epsilon) * norm.cdf(-a - b))


def gaussian_sigma(l2_sensitivity: float, rho: float) -> float:
    """σ with σ² = Δ2²/(2ρ): the Gaussian mechanism's noise std for ρ-zCDP (BS16 Prop. 1.6)."""
    return _positive("l2_sensitivity", l2_sensitivity) / math.sqrt(2 * _positive("rho", rho))


def laplace_scale(l1_sensitivity: float, epsilon: float) -> float:
    """b = Δ1/ε: the Laplace mechanism's scale for ε-DP (Dwork et al. 2006)."""
    return _positive("l1_sensitivity", l1_sensitivity) / _positive("epsilon", epsilon)
