"""The research noise backend: node noise in floating point from `experiments.prng` (Philox4x32-10
bits keyed by the counter's keys, normal and Laplace samples by inversion; about 3x faster on the
CPU than `jax.random`'s threefry samples, the same laws).

Fast, but open to floating-point attacks on the noise (Mironov, CCS 2012): for experiments, not
for releases (`privacy.counters.secure` is). Unit draws are N(0, 1) (ρ-zCDP, Bun & Steinke, TCC
2016) or Laplace(1) (density e^{-|x|}/2, variance 2; pure ε-DP, Dwork, McSherry, Nissim &
Smith, TCC 2006), scaled by the node scale σ or b (`Counter.node_scale`).

The draws of step t come from step_key(agent_key, t) = fold_in(agent_key, t) (one key per stream
and step, `Strategy.research_step`). The state runs one step ahead: after step t the strategy
state is already advanced to step t + 1 and `pending` holds its noise, so each step makes one
draw and one `advance`, and `act` only reads `pending`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from experiments import prng
from privacy.continual import ContinualSpec
from privacy.counters.state import CounterState
from privacy.counters.strategy import Strategy


class ResearchState(NamedTuple):
    scale: jax.Array  # () node noise scale: std σ (gaussian) or Laplace scale b
    pending: jax.Array  # (d,) noise (B z)_{t+1} of the next release, in node units


@dataclass(frozen=True)
class Research:
    """Float node noise from the counter's key (module docstring)."""

    distribution: str = "gaussian"

    def unit(self, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
        """iid unit draws: N(0, 1) or Laplace(1) (`experiments.prng`: fast float samples)."""
        if self.distribution == "gaussian":
            return prng.normal(key, shape)
        return prng.laplace(key, shape)

    def init(
        self, strategy: Strategy, spec: ContinualSpec, key: jax.Array, scale: float
    ) -> tuple[Any, ResearchState]:
        """The strategy state advanced to step 1, and step 1's noise pending."""
        s = strategy.init_research(spec, key, self.unit)
        s, pending = strategy.research_step(s, jnp.ones((), jnp.int32), key, self.unit)
        return s, ResearchState(scale=jnp.asarray(scale, jnp.result_type(float)), pending=pending)

    def release(self, state: CounterState, x: jax.Array) -> jax.Array:
        """Ŝ_t = S_{t-1} + x_t + scale (B z)_t."""
        return state.total + x + state.noise.scale * state.noise.pending

    def update(self, strategy: Strategy, state: CounterState, x: jax.Array) -> CounterState:
        """Count x_t and prepare step t + 2's noise (t = state.t + 1 completed)."""
        t = state.t + 1
        s, pending = strategy.research_step(state.strategy, t + 1, state.key, self.unit)
        return state._replace(
            t=t, total=state.total + x, strategy=s, noise=state.noise._replace(pending=pending)
        )
