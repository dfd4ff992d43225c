"""How plugins reach the model behind a strategy (possibly DDP-wrapped)."""

from __future__ import annotations

from typing import Type, TypeVar

from torch import nn

from avalanche_litelora.models.lora_classifier import LoRAClassifier
from avalanche_litelora.training.distributed import unwrap

M = TypeVar("M", bound=nn.Module)


def model_of_type(strategy, model_type: Type[M], method: str) -> M:
    """The strategy's model, unwrapped from DDP, checked to be the one ``method``'s plugins need."""
    model = unwrap(strategy.model)
    if not isinstance(model, model_type):
        raise TypeError(
            f"{method} plugins need the strategy's model to be a {model_type.__name__} "
            f"(see avalanche_litelora.{model_type.__name__}), got {type(model).__name__}"
        )
    return model


def lora_model(strategy) -> LoRAClassifier:
    return model_of_type(strategy, LoRAClassifier, "LiteLoRA")
