"""The shared engine: protocol, simulation loop, results, plots and tables (DESIGN.md)."""

from experiments.protocol import Agent, AgentBase, Draw, Env, IllegalActionError
from experiments.simulate import SimResult, make_grid, simulate

__all__ = [
    "Agent",
    "AgentBase",
    "Draw",
    "Env",
    "IllegalActionError",
    "SimResult",
    "make_grid",
    "simulate",
]
