"""Strategies and plugins."""

from avalanche_litelora.training.strategies import (
    LiteLoRAStrategy,
    PerTaskLoRAStrategy,
    SequentialLoRAStrategy,
)

__all__ = ["LiteLoRAStrategy", "PerTaskLoRAStrategy", "SequentialLoRAStrategy"]
