"""Classic stochastic-bandit agents: pure functions over explicit state."""

from bandits.agents.ucb import UCB1

__all__ = ["UCB1"]
