"""The adapter model behind a strategy: the one accessor plugins, metrics, checkpoints and the
analysis use, so none of them needs to know about DDP or which method built the model.

:func:`adapter_model_of` unwraps DDP and checks the model's kind; :func:`unwrap_ddp` is the one
place the package unwraps a module; :class:`OptionalAdapterModel` serves the metrics, which
skip (with one warning) a strategy whose model is not the kind they read.
"""

from __future__ import annotations

import warnings
from typing import Optional, Type, TypeVar

from avalanche.distributed import DistributedHelper
from torch import nn

from avalanche_litelora.adapters.model import AdapterModel

M = TypeVar("M", bound=nn.Module)


def unwrap_ddp(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the module itself); returns, never mutates."""
    return DistributedHelper.unwrap_model(model)


def adapter_model_of(strategy, kind: Type[M] = AdapterModel, method: Optional[str] = None) -> M:
    """The strategy's model, unwrapped from DDP, checked to be a ``kind``.

    :param method: who needs it, for the message (default: ``kind.method_name``).
    """
    model = unwrap_ddp(strategy.model)
    if not isinstance(model, kind):
        who = method or getattr(kind, "method_name", kind.__name__)
        raise TypeError(
            f"{who} plugins need the strategy's model to be a {kind.__name__} "
            f"(see avalanche_litelora.{kind.__name__}), got {type(model).__name__}"
        )
    return model


class OptionalAdapterModel:
    """:func:`adapter_model_of`, or None when the model is not a :attr:`kind`: reported once, then
    skipped. A metric keeps one; ``kind`` is a class attribute, so the metric's checkpointed
    state holds no class reference."""

    kind: type = AdapterModel

    def __init__(self, owner: str):
        self.owner = owner
        self._warned = False

    def __call__(self, strategy) -> Optional[M]:
        try:
            return adapter_model_of(strategy, self.kind)
        except TypeError:
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"{self.owner}: the strategy's model is a {type(strategy.model).__name__}, "
                    f"not a {self.kind.__name__}; adapter read-outs are skipped",
                    RuntimeWarning,
                )
            return None
