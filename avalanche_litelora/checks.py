"""The package's argument checks, written once.

Every config, plugin and model checks its arguments with these, so a bad value gets the
same message wherever it is given: the argument's name, what it must be, and the value.
Each check returns the value (a float for a real) so a constructor can store it directly.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence


def is_count(value: Any, minimum: int = 1) -> bool:
    """An ``int`` (not a bool) of at least ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def is_finite(value: Any) -> bool:
    """A real, finite number (not a bool): an infinite weight or rate only yields NaNs later."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    if not is_count(value, minimum):
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


def check_real(name: str, value: Any, *, positive: bool = False, at_least_zero: bool = False) -> float:
    ok = is_finite(value) and (not positive or value > 0) and (not at_least_zero or value >= 0)
    if not ok:
        bound = " > 0" if positive else " >= 0" if at_least_zero else ""
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)


def check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value
