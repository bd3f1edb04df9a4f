"""Bandit environments and agents: stochastic K-armed, streaming and linear bandits."""

from bandits.envs import (
    BanditParams,
    BanditSpec,
    BernoulliBandit,
    GaussianBandit,
    Pull,
    bernoulli_bandit,
    gaussian_bandit,
    make_means,
)

__all__ = [
    "BanditParams",
    "BanditSpec",
    "BernoulliBandit",
    "GaussianBandit",
    "Pull",
    "bernoulli_bandit",
    "gaussian_bandit",
    "make_means",
]
