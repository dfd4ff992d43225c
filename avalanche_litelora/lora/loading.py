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
    from avalanche_litelora.lora.model import LoRAClassifier


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
    _adopt_magnitude_scope(module, state_dict, prefix, names)
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


def _adopt_magnitude_scope(module: "LoRAClassifier", state_dict, prefix: str, names: List[str]) -> None:
    """A model that holds no adapter yet takes the magnitude scope the dict was saved with, as
    it takes its adapters and head sizes; one that does must match it."""
    if not names:
        return
    scope = "per_adapter" if any(k.startswith(prefix + "shared_magnitudes.") for k in state_dict) else "per_layer"
    if scope == module.magnitude_scope:
        return
    if module.adapter_names:
        raise ValueError(
            f"this state dict was saved with magnitude_scope={scope!r} and the model holds adapters "
            f"with magnitude_scope={module.magnitude_scope!r}: load it into a fresh model"
        )
    module.magnitude_scope = scope


def _match_shared_magnitudes(module: "LoRAClassifier", state_dict, prefix: str, names: List[str]) -> None:
    """One shared magnitude per loaded adapter when the model has them."""
    if module.magnitude_scope != "per_adapter":
        return
    for name in names:
        if name not in module.shared_magnitudes:
            device = module.gate.logits[name].device
            module.shared_magnitudes[name] = nn.Parameter(torch.ones((), device=device))
