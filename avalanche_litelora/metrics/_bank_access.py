"""The adapter bank behind a strategy, or None (with one warning) when there is none."""

from __future__ import annotations

import warnings
from typing import Optional

from avalanche_litelora.models.lora_classifier import LoRAClassifier
from avalanche_litelora.models.access import lora_model


class BankLookup:
    """Unwraps DDP; a model that is not a LoRAClassifier is reported once, then skipped."""

    def __init__(self, owner: str):
        self.owner = owner
        self._warned = False

    def __call__(self, strategy) -> Optional[LoRAClassifier]:
        try:
            return lora_model(strategy)
        except TypeError:
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"{self.owner}: the strategy's model is a {type(strategy.model).__name__}, "
                    "not a LoRAClassifier; adapter read-outs are skipped",
                    RuntimeWarning,
                )
            return None
