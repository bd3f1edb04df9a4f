"""Pieces shared by the streaming agents: the accuracy eps = (K/T)^{1/3}, integer pull counts,
action builders and the memory check.

Every algorithm of Wang (ICML 2023, arXiv:2306.02208) sets eps = (K/T)^{1/3} (abstract; the authors'
released code uses `eps = (num_arms/T)**(1/3)` throughout): exploring
costs O(K/eps^2) pulls and committing to an eps-best arm costs O(T eps), both K^{1/3} T^{2/3}.
Pull counts are integers: ``ceil`` of the real-valued batch sizes of the authors' code (which
pulls float counts); in faithful mode ``round``.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from bandits.streaming.env import StreamAction, StreamSpec
from experiments.config import ConfigError, check_choice
from experiments.protocol import AgentBase

MODES = ("corrected", "faithful")


def eps_of(K: int, T: int) -> float:
    """eps = (K/T)^{1/3}."""
    return (K / T) ** (1.0 / 3.0)


def count(x: float, mode: str) -> int:
    """An integer pull count for the real batch size x (>= 1)."""
    return max(1, round(x) if mode == "faithful" else math.ceil(x - 1e-9))


def action(drop=-1, read=-1, pull=-1, n=0, charge=-1) -> StreamAction:
    """A `StreamAction` with int fields (n in the platform int: int64 under x64)."""
    i32 = lambda v: jnp.asarray(v, jnp.int32)
    return StreamAction(
        i32(drop), i32(read), i32(pull), jnp.asarray(n, jnp.result_type(int)), i32(charge)
    )


def other_slot(a: jax.Array, b: jax.Array | int = -1, size: int = 3) -> jax.Array:
    """The lowest slot index in [0, size) that is neither a nor b."""
    idx = jnp.arange(size)
    return jnp.argmax((idx != a) & (idx != b)).astype(jnp.int32)


class StreamAgent(AgentBase):
    """Base: validates the mode and the memory needed against the environment's M."""

    mode: str

    def _check_mode(self) -> None:
        check_choice("mode", self.mode, MODES)

    def memory_needed(self, spec: StreamSpec) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def check_spec(self, spec: Any) -> StreamSpec:
        """ConfigError when env.memory is below this algorithm's stated memory bound."""
        if not isinstance(spec, StreamSpec):
            raise ConfigError(f"env: {type(self).__name__} needs a streaming env (env=streaming)")
        need = self.memory_needed(spec)
        if spec.memory < need:
            raise ConfigError(
                f"env.memory: {type(self).__name__} needs {need} arm slots at K = {spec.num_arms}"
                f" (got {spec.memory})"
            )
        return spec
