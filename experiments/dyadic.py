"""Dyadic grids 2^-k: the values exact (secure) noise can be added to without rounding.

Shared by the environments that declare a grid for their rewards or stream values (a
``reward_grid``) and by the mechanisms that check it (`privacy.streams`).
"""

from __future__ import annotations

from fractions import Fraction

MAX_GRID_K = 60  # the largest grid exponent a mechanism accepts (`grid_k` <= 60)


def grid_exponent(value: float) -> int:
    """The smallest k >= 0 with `value` a multiple of 2^-k, exactly (a finite float is a dyadic
    rational m 2^-e, so k <= 1074; 0.3 as a double is 5404319552844595 2^-54: k = 54)."""
    return Fraction(value).denominator.bit_length() - 1
