"""Loading a saved adapter bank into a freshly built LoRAClassifier.

A fresh model has no adapters and a small head; the state dict of a trained one names its
adapters, logits, magnitudes and head sizes. The pre-hook here rebuilds those first, so
``load_state_dict`` fills them as it would any other module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List

import torch
from torch import nn

if TYPE_CHECKING:
    from avalanche_litelora.models.lora_classifier import LoRAClassifier


def rebuild_bank_for_loading(module: "LoRAClassifier", state_dict, prefix, *args) -> None:
    """Recreate the adapters, logits and head sizes a state dict holds, so it loads as is.

    Only a dict saved from a LoRAClassifier (it carries the bank's extra state) rebuilds the
    bank; a partial dict (say, a head alone) leaves the adapters as they are.
    """
    module._regrow_head_for_loading(state_dict, prefix)
    if prefix + "_extra_state" not in state_dict:
        return
    gate_prefix = prefix + "gate.logits."
    names = [k[len(gate_prefix):] for k in state_dict if k.startswith(gate_prefix)]
    names.sort(key=lambda n: int(n.rsplit("_", 1)[-1]) if n.rsplit("_", 1)[-1].isdigit() else 0)
    module.unmerge()
    for name in [n for n in module.adapter_names if n not in names]:
        module.prune(name)
        module.pruned_adapters.remove(name)
    for name in names:
        if name in module.gate.logits:
            continue
        module._add_adapter_everywhere(name)  # the values are loaded next
        module.gate.add(name, module.init_logit)
    _match_shared_magnitudes(module, state_dict, prefix, names)
    candidate = state_dict[prefix + "_extra_state"].get("candidate")
    for name in names:
        if name != candidate:  # finished adapters load frozen, as they were saved
            for layer in module.lora_layers().values():
                layer.adapters[name].set_requires_grad(adapter=False, magnitude=False)
            module.gate.logits[name].requires_grad_(False)
            if name in module.shared_magnitudes:
                module.shared_magnitudes[name].requires_grad_(False)


def _match_shared_magnitudes(module: "LoRAClassifier", state_dict, prefix: str, names: List[str]) -> None:
    """One shared magnitude per loaded adapter when the model has them; a dict saved with
    per-layer magnitudes alone (before shared ones existed) loads with shared ones of 1,
    which computes exactly what it computed."""
    key = prefix + "shared_magnitudes."
    saved = [k for k in state_dict if k.startswith(key)]
    if module.magnitude_scope != "per_adapter":
        if saved:
            raise ValueError(
                "this state dict holds one magnitude per adapter (magnitude_scope='per_adapter'): "
                "build the model with magnitude_scope='per_adapter' to load it"
            )
        return
    for name in names:
        if name not in module.shared_magnitudes:
            device = module.gate.logits[name].device
            module.shared_magnitudes[name] = nn.Parameter(torch.ones((), device=device))
        state_dict.setdefault(key + name, torch.ones(()))
