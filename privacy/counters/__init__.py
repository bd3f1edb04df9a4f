"""Continual counters: a counter is a strategy composed with a noise backend.

Layout (one job per module):

* `strategy`: the `Strategy` base (four required methods, the rest defaulted);
* `tree`, `smooth`, `honaker`, `toeplitz`, `blt`: the strategies (binary tree, smooth binary,
  Honaker, square-root Toeplitz and the integer Toeplitz of secure mode, BLT);
* `research`, `secure`: the noise backends (float noise from the key; exact integer noise on
  the host, with the privacy argument);
* `state`: the counter agent's state; `agent`: `Counter` (privacy parameters, calibration, the
  protocol) and the factories `BinaryTreeCounter`, ..., `COUNTERS`;
* `run`: releases and noise streams through `experiments.rollout`, and the closed-form noise
  paths of the R2 Monte Carlo.
"""

from privacy.counters.agent import (
    COUNTERS,
    DISTRIBUTIONS,
    MODES,
    SOURCES,
    BinaryTreeCounter,
    BLTCounter,
    Counter,
    HonakerCounter,
    SmoothBinaryCounter,
    SqrtToeplitzCounter,
)
from privacy.counters.blt import BLTState, BLTStrategy
from privacy.counters.honaker import Honaker, HonakerCounts, HonakerState, honaker_chain
from privacy.counters.research import Research, ResearchState
from privacy.counters.run import (
    noise_from_draws,
    noise_paths,
    noise_streams,
    noise_sum_of_squares,
    releases,
)
from privacy.counters.secure import (
    GAUSS_TAIL,
    LAPLACE_TAIL,
    SAMPLERS,
    PoolSource,
    Secure,
    SecureNoise,
    SecurePlan,
    SecureState,
    discrete_gaussian_variance,
    discrete_laplace_variance,
    host_draws,
    keyed_source,
    os_source,
)
from privacy.counters.smooth import SmoothBinary, SmoothState
from privacy.counters.state import CounterState
from privacy.counters.strategy import Strategy
from privacy.counters.toeplitz import (
    QuantisedState,
    QuantisedToeplitz,
    SqrtToeplitz,
    Toeplitz,
    ToeplitzPath,
    ToeplitzState,
    causal_convolve,
)
from privacy.counters.tree import BinaryState, BinaryTree

__all__ = [
    "COUNTERS",
    "DISTRIBUTIONS",
    "GAUSS_TAIL",
    "LAPLACE_TAIL",
    "MODES",
    "SAMPLERS",
    "SOURCES",
    "BLTCounter",
    "BLTState",
    "BLTStrategy",
    "BinaryState",
    "BinaryTree",
    "BinaryTreeCounter",
    "Counter",
    "CounterState",
    "Honaker",
    "HonakerCounter",
    "HonakerCounts",
    "HonakerState",
    "PoolSource",
    "QuantisedState",
    "QuantisedToeplitz",
    "Research",
    "ResearchState",
    "Secure",
    "SecureNoise",
    "SecurePlan",
    "SecureState",
    "SmoothBinary",
    "SmoothBinaryCounter",
    "SmoothState",
    "SqrtToeplitz",
    "SqrtToeplitzCounter",
    "Strategy",
    "Toeplitz",
    "ToeplitzPath",
    "ToeplitzState",
    "causal_convolve",
    "discrete_gaussian_variance",
    "discrete_laplace_variance",
    "honaker_chain",
    "host_draws",
    "keyed_source",
    "noise_from_draws",
    "noise_paths",
    "noise_streams",
    "noise_sum_of_squares",
    "os_source",
    "releases",
]
