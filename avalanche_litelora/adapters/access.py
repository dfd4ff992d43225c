"""The model behind a strategy: unwrapped from DDP, and checked to be the kind the caller needs.

The one place the package unwraps DDP; plugins, metrics, checkpoints and the analysis all
reach the model through it, so none of them needs to know about the training machinery.
"""

from __future__ import annotations

from typing import Type, TypeVar

from avalanche.distributed import DistributedHelper
from torch import nn

from avalanche_litelora.models.lora_classifier import LoRAClassifier

M = TypeVar("M", bound=nn.Module)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return DistributedHelper.unwrap_model(model)


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
    """The LoRA bank behind a strategy (possibly DDP-wrapped)."""
    return model_of_type(strategy, LoRAClassifier, "LiteLoRA")
