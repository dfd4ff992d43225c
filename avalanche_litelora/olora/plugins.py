"""O-LoRA as Avalanche plugins, one lifecycle job each.

The bank's ``OpenCandidatePlugin`` opens the experience's adapter and ``FreezeBankPlugin``
freezes it afterwards, as for per-task LoRA; :class:`AdapterScalePlugin` gives the new
adapter peft's ``lora_alpha / r`` scale and keeps it fixed, and :class:`OrthogonalityPlugin`
adds O-LoRA's penalties to the loss.
"""

from __future__ import annotations

from typing import Dict

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.utils import _at_task_boundary

from avalanche_litelora.checks import check_real
from avalanche_litelora.adapters.layer import set_trainable
from avalanche_litelora.adapters.access import adapter_model_of
from avalanche_litelora.lora.model import LoRAClassifier
from avalanche_litelora.olora.orthogonality import l2_loss, layer_factors, orthogonality_loss, overlap
from avalanche_litelora.training.distributed import drop_ddp_wrapper, wrap_for_training
from avalanche_litelora.registry import register


@register
class AdapterScalePlugin(SupervisedPlugin, supports_distributed=True):
    """``before_training_exp``: the new adapter's update is ``scale * B A``, the scale fixed.

    The bank trains a candidate's magnitude in its magnitude phase (SD-LoRA); O-LoRA has
    none, so the magnitude is set once, at the experience's start, and never trains
    (official: ``scaling = lora_alpha / r`` for every adapter, ``src/peft/tuners/lora.py``).
    """

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = check_real("scale", scale, positive=True)

    def before_training_exp(self, strategy, **kwargs):
        model = adapter_model_of(strategy, LoRAClassifier)
        name = model.candidate
        if name is None:
            return
        magnitudes = [p for layer in model.lora_layers().values() for p in layer.adapters[name].magnitude.values()]
        if _at_task_boundary(strategy.experience, before=True):
            with torch.no_grad():
                for p in magnitudes:
                    p.fill_(self.scale)
        set_trainable(magnitudes, False)
        for p in magnitudes:
            strategy.optimizer.state.pop(p, None)
        drop_ddp_wrapper(strategy)
        wrap_for_training(strategy)  # under torchrun, DDP over what trains now


@register
class OrthogonalityPlugin(SupervisedPlugin, supports_distributed=True):
    """``before_backward``: loss += lambda_orth * sum |A_old A_new^T| + lambda_l2 * (||A_new|| + ||B_new||).

    Summed over every adapted layer and output slice, as the official trainer sums over
    layers (``src/uie_trainer_lora.py`` L90-109). The earlier ``A`` are constants: only the
    new adapter moves. The last step's terms are kept in :attr:`last` (a read-out).
    """

    def __init__(self, lambda_orth: float = 0.5, lambda_l2: float = 0.0):
        super().__init__()
        self.lambda_orth = check_real("lambda_orth", lambda_orth, at_least_zero=True)
        self.lambda_l2 = check_real("lambda_l2", lambda_l2, at_least_zero=True)
        self.last: Dict[str, float] = {}

    def before_backward(self, strategy, **kwargs):
        model = adapter_model_of(strategy, LoRAClassifier)
        name = model.candidate
        self.last = {}  # a step that adds nothing leaves no stale read-out behind
        if name is None or (self.lambda_orth == 0 and self.lambda_l2 == 0):
            return
        orth, l2 = strategy.loss.new_zeros(()), strategy.loss.new_zeros(())
        for layer in model.lora_layers().values():
            adapter = layer.adapters[name]
            if self.lambda_orth:
                for old, new in layer_factors(layer, name).values():
                    orth = orth + orthogonality_loss(old, new)
            if self.lambda_l2:
                l2 = l2 + l2_loss(list(adapter.A.values()) + list(adapter.B.values()))
        strategy.loss = strategy.loss + self.lambda_orth * orth + self.lambda_l2 * l2
        self.last = {"orthogonal": float(orth.detach()), "l2": float(l2.detach())}


def bank_overlap(model, name: str) -> Dict[str, float]:
    """Per layer and slice, the scale-free overlap of adapter ``name``'s ``A`` with the others'."""
    return {f"{layer_name}.{key}": overlap(old, new)
            for layer_name, layer in model.lora_layers().items()
            for key, (old, new) in layer_factors(layer, name).items()}
