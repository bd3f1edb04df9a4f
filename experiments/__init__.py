"""The shared engine: protocol, simulation loop, results, plots and tables.

The one-seed rollout is `experiments.rollout.rollout` (the submodule keeps its name).

Importing the package first splits JAX's CPU backend into one device per core (the default;
``REGRETLAB_HOST_DEVICES=1`` keeps one, ``=k`` asks for k: `experiments.devices`), before
anything below can start a backend, so the engine's seed sharding can use every core in every
entry point.
"""

# ruff: noqa: E402  (the device count must be set before the imports below)
from experiments.devices import use_all_cores

HOST_DEVICES = use_all_cores()  # the host devices this import set, or None where it set none

from experiments.episodic import EpisodeFeedback, EpisodeObs, EpisodicEnv
from experiments.protocol import (
    Agent,
    AgentBase,
    Draw,
    Env,
    EnvBase,
    Exogenous,
    IllegalActionError,
    MetricInfo,
    step_key,
)
from experiments.simulate import SimResult, make_grid, simulate

__all__ = [
    "Agent",
    "AgentBase",
    "Draw",
    "Env",
    "EnvBase",
    "EpisodeFeedback",
    "EpisodeObs",
    "EpisodicEnv",
    "Exogenous",
    "IllegalActionError",
    "MetricInfo",
    "SimResult",
    "make_grid",
    "simulate",
    "step_key",
]
