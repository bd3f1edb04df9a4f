"""The shared engine: protocol, simulation loop, results, plots and tables.

The one-seed rollout is `experiments.rollout.rollout` (the submodule keeps its name).
"""

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
