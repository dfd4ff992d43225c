"""Mixed precision for any Avalanche strategy: the forward pass under ``torch.autocast``.

``before_forward`` / ``before_eval_forward`` enter the autocast region and ``after_forward`` /
``after_eval_forward`` leave it, so the model (LoRA layers included) runs its matrix products
in bfloat16 while the parameters, the optimizer and the loss stay in float32: the output is
cast back to float32 before Avalanche computes the loss. bfloat16 has float32's exponent
range, so no gradient scaler is needed. Every plugin's per-iteration callbacks run between
the two hooks, so LiteLoRA's selection phase, which reuses Avalanche's ``training_epoch``,
is covered too.
"""

from __future__ import annotations

import contextlib
from typing import Optional, Sequence

import torch
from avalanche.core import SupervisedPlugin
from avalanche_litelora.registry import register


def bf16_supported(device: torch.device) -> bool:
    """bfloat16 autocast is worth it: a CUDA device with native bf16 (Ampere or newer)."""
    device = torch.device(device)
    return device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


@register
class AutocastPlugin(SupervisedPlugin, supports_distributed=True):
    """Runs the strategy's forward passes under ``torch.autocast(device_type, dtype)``.

    :param dtype: the autocast dtype (bfloat16 by default).
    :param device_types: the strategy devices it acts on; on any other device (CPU by
        default, where bf16 matmuls are slow without AMX) it does nothing.
    """

    def __init__(self, dtype: torch.dtype = torch.bfloat16, device_types: Sequence[str] = ("cuda",)):
        super().__init__()
        if dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(f"dtype must be torch.bfloat16 or torch.float16, got {dtype!r}")
        if isinstance(device_types, str) or not all(isinstance(d, str) for d in device_types):
            raise TypeError(f"device_types must be a sequence of device type names, got {device_types!r}")
        self.dtype = dtype
        self.device_types = tuple(device_types)
        self._region: Optional[torch.autocast] = None

    def region(self, strategy):
        """The autocast region this plugin runs ``strategy``'s forward passes in (a null
        context on other devices): for passes the strategy makes outside its loop."""
        if strategy.device.type in self.device_types:
            return torch.autocast(device_type=strategy.device.type, dtype=self.dtype)
        return contextlib.nullcontext()

    def _enter(self, strategy) -> None:
        self._leave()  # a forward pass that raised left its region open
        if strategy.device.type in self.device_types:
            self._region = torch.autocast(device_type=strategy.device.type, dtype=self.dtype)
            self._region.__enter__()

    def _leave(self, strategy=None) -> None:
        if self._region is not None:
            self._region.__exit__(None, None, None)
            self._region = None
            if strategy is not None and torch.is_tensor(strategy.mb_output):
                strategy.mb_output = strategy.mb_output.float()

    def before_forward(self, strategy, **kwargs):
        self._enter(strategy)

    def after_forward(self, strategy, **kwargs):
        self._leave(strategy)

    def before_eval_forward(self, strategy, **kwargs):
        self._enter(strategy)

    def after_eval_forward(self, strategy, **kwargs):
        self._leave(strategy)

    def after_training_exp(self, strategy, **kwargs):
        self._leave()

    def after_eval_exp(self, strategy, **kwargs):
        self._leave()
