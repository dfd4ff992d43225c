"""How plugins reach the adapter-bank model behind a strategy (possibly DDP-wrapped)."""

from __future__ import annotations

from torch import nn

from avalanche_litelora.models.lora_classifier import LoRAClassifier


def lora_model(strategy) -> LoRAClassifier:
    model = strategy.model
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    if not isinstance(model, LoRAClassifier):
        raise TypeError(
            "LiteLoRA plugins need the strategy's model to be a LoRAClassifier "
            f"(see avalanche_litelora.LoRAClassifier), got {type(model).__name__}"
        )
    return model
