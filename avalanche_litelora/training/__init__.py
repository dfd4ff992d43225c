"""Strategies and plugins."""

from avalanche_litelora.training.strategies import (
    LiteLoRAStrategy,
    PerTaskLoRAStrategy,
    SequentialLoRAStrategy,
    TaskRoutedLoRAStrategy,
)
from avalanche_litelora.training.share_strategy import ShareStrategy

__all__ = ["LiteLoRAStrategy", "PerTaskLoRAStrategy", "SequentialLoRAStrategy", "ShareStrategy",
           "TaskRoutedLoRAStrategy"]
