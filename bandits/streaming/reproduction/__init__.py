"""The reproduction of Wang, "Tight Regret Bounds for Single-pass Streaming Multi-armed Bandits"
(ICML 2023, arXiv:2306.02208): ``regretlab-reproduce streaming_wang2023``
(docs/streaming.md lists the items and shows the results). Items:

* R1, R2 (with R8): the six algorithms of the authors' code, clear-cut and mix-in, both modes;
* R4 (`rates`): regret / (K^{1/3} T^{2/3}) against T (K = 1000) and K (T = K^3), fitted log-log
  slopes vs the closed forms of uniform ((ln T)^{1/3}) and naive (ln K), log* and GoA flat, with
  UCB1 / Thompson as full-memory references;
* R6 (`lower_bound`): the seven streaming algorithms on our reconstructed lower-bound family (not
  stated in the paper) stay above c K^{1/3} T^{2/3}; uniform against its exact expectation there;
* R7 (`memory`): peak memory per algorithm vs the bound it is designed for and, for the
  towers, an independent occupancy walk of the level skeleton of the authors' tower routines.
"""

from bandits.streaming.reproduction.headline import r1, r2
from bandits.streaming.reproduction.lower_bound import r6
from bandits.streaming.reproduction.memory import r7
from bandits.streaming.reproduction.rates import r4

TITLE = "Wang, Tight Regret Bounds for Single-pass Streaming Multi-armed Bandits (ICML 2023)"
ITEMS = {"R1": r1, "R2": r2, "R4": r4, "R6": r6, "R7": r7}
