"""Single-pass streaming multi-armed bandits (Wang, ICML 2023, arXiv:2306.02208): the
environment, its instances, and the streaming explore-then-commit algorithms (docs/streaming.md)."""

from bandits.streaming.env import (
    StreamAction,
    StreamingBandit,
    StreamObs,
    StreamSpec,
    horizon_of,
    streaming_bandit,
)
from bandits.streaming.goa import GameOfArms
from bandits.streaming.jin import DoublingKingChallenger
from bandits.streaming.tower import StreamLog, StreamLogLog, StreamLogStar
from bandits.streaming.uniform import StreamNaive, StreamUniform

__all__ = [
    "DoublingKingChallenger",
    "GameOfArms",
    "StreamAction",
    "StreamLog",
    "StreamLogLog",
    "StreamLogStar",
    "StreamNaive",
    "StreamObs",
    "StreamSpec",
    "StreamUniform",
    "StreamingBandit",
    "horizon_of",
    "streaming_bandit",
]
