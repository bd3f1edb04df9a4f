"""Classic stochastic-bandit agents: pure functions over explicit state."""

from bandits.agents.epsilon_greedy import DecayingEpsilonGreedy, EpsilonGreedy
from bandits.agents.etc import ExploreThenCommit
from bandits.agents.kl_ucb import KLUCB
from bandits.agents.moss import MOSS
from bandits.agents.thompson import GaussianThompsonSampling, ThompsonSampling
from bandits.agents.ucb import UCB1

__all__ = [
    "KLUCB",
    "MOSS",
    "UCB1",
    "DecayingEpsilonGreedy",
    "EpsilonGreedy",
    "ExploreThenCommit",
    "GaussianThompsonSampling",
    "ThompsonSampling",
]
