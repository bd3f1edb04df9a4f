"""A continual counter = a strategy (`Strategy`) composed with a noise backend (`research`,
`secure`), as an agent of `privacy.continual.ContinualCounting`.

Each counter observes x_t in [0, bound]^d and releases Ŝ_t, an estimate of S_t = x_1 + ... + x_t,
through its strategy's factorisation A = B C of the prefix-sum matrix: the node values C x get
independent noise z and the release is B (C x + z) = S_t + (B z)_t. `Counter` holds the privacy
parameters and calibrates the node noise; the strategy runs the factorisation; the backend draws
the noise and computes the release (its module states the privacy argument).

Privacy (every strategy, both backends) of the whole sequence of releases, for streams fixed in
advance and for adaptively chosen ones: the node noise is independent of the data, a node's value
is fixed once its inputs have arrived, so the releases are an adaptive composition of per-node
mechanisms whose costs add up over the nodes that contain the differing element, and the release
is post-processing of the noisy nodes (Jain, Raskhodnikova, Sivakumar & Smith, ICML 2023, §2,
discuss the adaptive model), under the `neighbouring` relation:

* ``event``: streams differing in one element, which changes by at most `bound` in each of the
  d coordinates: ℓ2-sensitivity² of Cx = bound² d sens²(C); ℓ1-sensitivity = bound d sens1(C);
* ``user``: up to `participations` = k elements: sensitivities <= k times those (triangle
  inequality; an upper bound, exact for k = 1).

``distribution``:

* ``gaussian`` (ρ-zCDP, Bun & Steinke, TCC 2016): per-node N(0, σ²),
  σ = k bound sqrt(d sens²)/sqrt(2ρ);
* ``laplace`` (pure ε-DP, Dwork, McSherry, Nissim & Smith, TCC 2006): per-node Laplace(b),
  b = k bound d sens1/ε (trees: sens1 = sens² = nodes containing one element, e.g. L for the
  binary tree, so b = L bound d/ε and Var_t = 2 popcount(t) b²).

``noise: research`` (`privacy.counters.research`) draws this noise in floating point: the
statement holds for the real-valued mechanism, but floats are open to attacks on the noise
(Mironov, CCS 2012), so research mode is for simulations. ``noise: secure``
(`privacy.counters.secure`) snaps the inputs, runs an integer strategy and draws exact discrete
Gaussian or Laplace node noise with the same calibration in grid units; its module gives the
argument that the released values are ρ-zCDP or ε-DP.

Input grid (secure mode). The snap to the grid 2^-k changes any value that is not a multiple
of 2^-k, which biases the releases; so a stream value off the grid is refused at load time
(`_check`, from the env's `ContinualSpec.inputs`: by construction for a random law, value by
value for a fixed sequence), with one line naming `grid_k` and the grid that holds the stream,
unless ``snap: true`` asks for the rounding; then `info` counts the snapped values and the
largest change, and the run's summary reports them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.config import ConfigError, check_choice, check_float, check_int
from experiments.dyadic import MAX_GRID_K
from experiments.protocol import AgentBase
from privacy.accounting import Neighbouring
from privacy.continual import ContinualSpec
from privacy.counters.blt import BLTStrategy
from privacy.counters.honaker import Honaker
from privacy.counters.research import Research
from privacy.counters.secure import (
    GAUSS_TAIL,
    LAPLACE_TAIL,
    Secure,
    SecureNoise,
    SecurePlan,
    noise_variance,
)
from privacy.counters.smooth import SmoothBinary
from privacy.counters.state import CounterState
from privacy.counters.strategy import Strategy
from privacy.counters.toeplitz import SqrtToeplitz
from privacy.counters.tree import BinaryTree
from privacy.streams import OffGrid, snap_to_grid

MODES = ("research", "secure")
DISTRIBUTIONS = ("gaussian", "laplace")
SOURCES = ("os", "key")


@dataclass(frozen=True)
class Counter(AgentBase):
    """A strategy with calibrated node noise from a backend (`noise`: research | secure)."""

    strategy: Strategy
    rho: float | None = 0.5
    neighbouring: str = "event"
    participations: int = 1
    bound: float = 1.0
    clip: bool = False
    noise: str = "research"
    distribution: str = "gaussian"
    epsilon: float | None = None
    grid_k: int = 0
    source: str = "os"
    snap: bool = False  # secure: round stream values off the grid (counted) instead of refusing

    def __post_init__(self):
        check_float("bound", self.bound, 0.0, low_open=True)
        Neighbouring(self.neighbouring, check_int("participations", self.participations, 1))
        if not isinstance(self.clip, bool):
            raise ConfigError(f"clip: must be true or false (got {self.clip!r})")
        check_choice("noise", self.noise, MODES)
        check_choice("distribution", self.distribution, DISTRIBUTIONS)
        check_choice("source", self.source, SOURCES)
        check_int("grid_k", self.grid_k, 0, MAX_GRID_K)
        if not isinstance(self.snap, bool):
            raise ConfigError(f"snap: must be true or false (got {self.snap!r})")
        if self.snap and self.noise != "secure":
            raise ConfigError(
                "snap: used only with noise=secure (research mode counts the values as they"
                " are); set snap=false"
            )
        if self.distribution == "gaussian":
            check_float("rho", self.rho, 0.0, low_open=True)
            if self.epsilon is not None:
                raise ConfigError(
                    f"epsilon: used only with distribution=laplace (got {self.epsilon!r});"
                    " set epsilon=null or distribution=laplace"
                )
        else:
            if self.epsilon is None:
                raise ConfigError("epsilon: required (> 0) with distribution=laplace (got None)")
            check_float("epsilon", self.epsilon, 0.0, low_open=True)
        if self.noise == "secure" and round(Fraction(self.bound) * 2**self.grid_k) < 1:
            raise ConfigError(
                f"grid_k: bound {self.bound:g} rounds to 0 on the grid 2^-{self.grid_k};"
                " raise grid_k"
            )

    @property
    def mechanism(self) -> str:
        return self.strategy.name

    @property
    def backend(self) -> Research | Secure:
        if self.noise == "research":
            return Research(distribution=self.distribution)
        return Secure(grid_k=self.grid_k, grid_bound=self.grid_bound())

    # ------------------------------------------------------------------ calibration
    def node_scale(self, spec: ContinualSpec) -> float:
        """Research node noise: σ = k bound sqrt(d sens²)/sqrt(2ρ) or b = k bound d sens1/ε."""
        T, k = spec.horizon, self.participations
        if self.distribution == "gaussian":
            l2 = k * self.bound * math.sqrt(spec.d * self.strategy.sens2(T))
            return l2 / math.sqrt(2 * self.rho)
        return k * self.bound * spec.d * self.strategy.sens1(T) / self.epsilon

    def grid_bound(self) -> int:
        """Δ_g = round(bound 2^k): the largest snapped input, in grid units."""
        return round(Fraction(self.bound) * 2**self.grid_k)

    def secure_plan(self, spec: ContinualSpec) -> SecurePlan:
        """The first integer strategy whose integers fit (ConfigError if none), with its exact
        node noise: σ² = (k Δ_g)² d sens²/(2ρ) or b = k Δ_g d sens1/ε (`secure` item 3)."""
        int_max = int(jnp.iinfo(jnp.result_type(int)).max)
        return _plan(self, spec, int_max)

    def _plan(self, spec: ContinualSpec, int_max: int) -> SecurePlan:
        dg, T = self.grid_bound(), spec.horizon
        least = None
        for ints in self.strategy.integer_strategies(T):
            noise = self._calibrate(spec, *ints.exact_sens(T))
            need = ints.int_need(T, dg, noise.zmax)
            if need <= int_max:
                return SecurePlan(noise=noise, strategy=ints)
            least = need if least is None else min(least, need)
        raise ConfigError(
            f"grid_k: secure {self.mechanism} counter needs integers up to {least:.3g} >"
            f" {int_max} at T = {T}; lower grid_k or set x64=true"
        )

    def _calibrate(self, spec: ContinualSpec, s2: int, s1: int) -> SecureNoise:
        """Discrete Gaussian σ² = (k Δ_g)² d sens²/(2ρ) or discrete Laplace b = k Δ_g d sens1/ε
        for the integer strategy's exact sensitivities (sens², sens1), exact Fractions."""
        k, dg = self.participations, self.grid_bound()
        if self.distribution == "gaussian":
            sigma2 = Fraction(k * k * dg * dg * spec.d * s2) / (2 * Fraction(self.rho))
            zmax = GAUSS_TAIL * (math.isqrt(math.ceil(sigma2)) + 1)
            return SecureNoise("gaussian", sigma2, zmax, self.source)
        b = Fraction(k * dg * spec.d * s1) / Fraction(self.epsilon)
        return SecureNoise("laplace", b, LAPLACE_TAIL * math.ceil(b), self.source)

    def secure_noise(self, spec: ContinualSpec) -> SecureNoise:
        """Exact node-noise parameters in grid units (`secure` item 3)."""
        return self.secure_plan(spec).noise

    def integer_strategy(self, spec: ContinualSpec) -> Any:
        """The integer strategy secure mode runs at `spec` (trees: the strategy itself)."""
        return self.secure_plan(spec).strategy

    def node_variance(self, spec: ContinualSpec) -> float:
        """Variance of one node's noise, in value units."""
        if self.noise == "research":
            s = self.node_scale(spec)
            return s * s if self.distribution == "gaussian" else 2 * s * s
        return noise_variance(self.secure_noise(spec)) * 4.0**-self.grid_k

    def row_norms2(self, spec: ContinualSpec) -> np.ndarray:
        """‖B[t]‖², t = 1..T, of the factorisation the backend runs (secure: the integer one)."""
        if self.noise == "research":
            return self.strategy.row_norms2(spec.horizon)
        return self.integer_strategy(spec).row_norms2(spec.horizon)

    def variance(self, spec: ContinualSpec) -> np.ndarray:
        """Exact per-step, per-coordinate error variance ‖B[t]‖² Var(node), t = 1..T."""
        return self.row_norms2(spec) * self.node_variance(spec)

    # ------------------------------------------------------------------ protocol
    def _check(self, spec: ContinualSpec) -> None:
        if spec.bound > self.bound and not self.clip:
            raise ConfigError(
                f"bound: stream values may reach {spec.bound:g} > the counter's bound"
                f" {self.bound:g}; raise bound or set clip=true (values are never clipped silently)"
            )
        if self.noise == "secure" and spec.inputs is not None and not self.snap:
            off = self.off_grid(spec)
            if off.count != 0:
                raise ConfigError(self._grid_refusal(spec, off))

    def off_grid(self, spec: ContinualSpec) -> OffGrid:
        """What the secure snap changes in the env's stream (`spec.inputs`, after clipping)."""
        clip_to = self.bound if self.clip else None
        return spec.inputs.off_grid(self.grid_k, self.grid_bound(), clip_to)

    def _grid_refusal(self, spec: ContinualSpec, off: OffGrid) -> str:
        """One line: the first value off the grid, and which grid_k holds every value."""
        k = self.grid_k
        if off.first is None:  # a random law off the grid
            clipped = f", clipped to {self.bound:g}" if self.clip else ""
            law = spec.inputs.law or "random law"
            what = f"the stream's law ({law}{clipped}) has values off the grid 2^-{k}"
        else:
            step, value = off.first
            what = (
                f"stream value {value!r} (step {step}) is not a multiple of 2^-{k}"
                f" and would be rounded ({off.count} of {off.total} values)"
            )
        need = off.exponent
        if need > MAX_GRID_K:
            fix = f"no grid_k <= {MAX_GRID_K} holds every value exactly (one needs 2^-{need})"
        else:
            exact = self._exact_at(spec, need)
            fix = f"grid_k={need} holds every value exactly" + exact
            if need > 24:  # beyond float32's mantissa: say why
                f = Fraction(off.hardest)
                fix += f" ({off.hardest!r} is {f.numerator}/2^{need} as a double)"
        return f"grid_k: {what}; {fix}; or set snap=true to round them (counted in the summary)"

    def _exact_at(self, spec: ContinualSpec, k: int) -> str:
        """'' if grid_k = k represents the stream in this run, else why not (a clause)."""
        other = dataclasses.replace(self, grid_k=k)
        int_max = int(jnp.iinfo(jnp.result_type(int)).max)
        try:
            other._plan(spec, 2**63 - 1)
        except ConfigError:
            return f", but the secure {self.mechanism} counter's integers overflow there"
        try:
            other._plan(spec, int_max)
        except ConfigError:
            return " only with x64=true (64-bit floats and integers)"
        if other.off_grid(spec).count != 0:  # the run's float32 changes a value
            return " only with x64=true (64-bit floats and integers)"
        return ""

    def counted_values(self, x: np.ndarray, spec: ContinualSpec) -> np.ndarray:
        """The values the counter sums for stream values `x` (float64, value units): clipped
        (``clip``) and, in secure mode, snapped to the grid 2^-grid_k."""
        x = np.asarray(x, np.float64)
        if self.clip:
            x = np.minimum(np.clip(x, 0.0, None), self.bound)
        if self.noise == "secure":
            x = snap_to_grid(x, self.grid_k, self.grid_bound())
        return x

    def info(self, spec: ContinualSpec) -> dict:
        """What the run's summary reports about this counter's input: with ``snap``, how many
        stream values were snapped to the grid and the largest change."""
        if not (self.noise == "secure" and self.snap and spec.inputs is not None):
            return {}
        off = self.off_grid(spec)
        count = "an unknown number" if off.count is None else f"{off.count} of {off.total}"
        change = "" if off.count is None else f", largest change {off.largest_change:.6g}"
        return {
            "input_grid": {
                "grid_k": self.grid_k,
                "snapped": off.count,
                "values": off.total,
                "largest_change": None if off.count is None else off.largest_change,
                "message": f"snap=true: {count} stream values snapped to the grid"
                f" 2^-{self.grid_k}{change}",
            }
        }

    def _x(self, obs: jax.Array) -> jax.Array:
        return jnp.clip(obs, 0.0, self.bound) if self.clip else obs

    def randomness(self, spec: ContinualSpec) -> dict:
        self._check(spec)
        return {}

    def init(self, key: jax.Array, spec: ContinualSpec) -> CounterState:
        self._check(spec)
        if self.noise == "research":
            total = jnp.zeros((spec.d,), jnp.result_type(float))
            s, noise = self.backend.init(self.strategy, spec, key, self.node_scale(spec))
        else:
            total = jnp.zeros((spec.d,), jnp.result_type(int))
            s, noise = self.backend.init(self.secure_plan(spec), spec, key)
        t = jnp.zeros((), jnp.int32)
        return CounterState(key=key, t=t, total=total, strategy=s, noise=noise)

    def act(self, rng, state: CounterState, obs: jax.Array) -> jax.Array:
        return self.backend.release(state, self._x(obs))

    def update(self, state: CounterState, obs, action, feedback) -> CounterState:
        return self.backend.update(self.strategy, state, self._x(obs))


@functools.lru_cache(maxsize=64)
def _plan(counter: Counter, spec: ContinualSpec, int_max: int) -> SecurePlan:
    return counter._plan(spec, int_max)


# --------------------------------------------------------------------------- factories
def BinaryTreeCounter(**privacy) -> Counter:
    """Binary tree mechanism (Dwork, Naor, Pitassi & Rothblum, STOC 2010; Chan, Shi & Song,
    ACM TISSEC 2011, Alg. 2): Var_t = popcount(t) Var(node)."""
    return Counter(strategy=BinaryTree(), **privacy)


def SmoothBinaryCounter(**privacy) -> Counter:
    """Smooth binary mechanism (Andersson & Pagh, NeurIPS 2023, §3): Var_t = D Var(node)/2."""
    return Counter(strategy=SmoothBinary(), **privacy)


def HonakerCounter(unrolled: bool | None = None, **privacy) -> Counter:
    """Honaker's variance-reduced tree, online (Honaker, TPDP 2015); `unrolled`: the form of
    the level recursion (None: by backend)."""
    return Counter(strategy=Honaker(unrolled=unrolled), **privacy)


def SqrtToeplitzCounter(**privacy) -> Counter:
    """Square-root Toeplitz factorisation (Fichtenberger, Henzinger & Upadhyay, ICML 2023, §3)."""
    return Counter(strategy=SqrtToeplitz(), **privacy)


def BLTCounter(
    buffers: int = 2,
    output_scale: Any = None,
    buf_decay: Any = None,
    **privacy,
) -> Counter:
    """Buffered linear Toeplitz strategy (Dvijotham et al., FOCS 2024, §5): the given
    `output_scale`/`buf_decay`, or the BLT with `buffers` buffers minimising the max loss."""
    strategy = BLTStrategy(buffers=buffers, output_scale=output_scale, buf_decay=buf_decay)
    return Counter(strategy=strategy, **privacy)


COUNTERS = {
    "binary": BinaryTreeCounter,
    "smooth": SmoothBinaryCounter,
    "honaker": HonakerCounter,
    "sqrt": SqrtToeplitzCounter,
    "blt": BLTCounter,
}
