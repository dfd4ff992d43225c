"""Strategies and plugins."""

from avalanche_litelora.training.strategies import (
    HeadOnlyStrategy,
    LiteLoRAStrategy,
    PerTaskLoRAStrategy,
    SequentialLoRAStrategy,
    TaskRoutedLoRAStrategy,
)
from avalanche_litelora.training.share_strategy import ShareStrategy

__all__ = ["HeadOnlyStrategy", "LiteLoRAStrategy", "PerTaskLoRAStrategy", "SequentialLoRAStrategy", "ShareStrategy",
           "TaskRoutedLoRAStrategy"]
