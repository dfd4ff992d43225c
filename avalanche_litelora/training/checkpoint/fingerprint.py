"""The configuration fingerprint: what must be equal for a checkpoint to resume into a strategy.

Its value is stored in every checkpoint and compared key by key on load, so any change to what
it collects (or how) makes older checkpoints refuse to load; it lives alone to keep that visible.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Mapping

import torch
from torch import nn

from avalanche_litelora.lora.adapter_layer import AdapterLayer
from avalanche_litelora.training.checkpoint.format import _is_plain
from avalanche_litelora.training.checkpoint.parts import _qualname, _state_attributes, _unwrap


def _public_scalars(obj: Any, skip: tuple = ()) -> Dict[str, Any]:
    return {
        k: v for k, v in sorted(vars(obj).items())
        if not k.startswith("_") and k not in skip
        and (v is None or isinstance(v, (bool, int, float, str)))
    }


def config_fingerprint(strategy) -> Dict[str, Any]:
    """What must be equal for a checkpoint to resume into ``strategy``.

    The strategy, model, optimizer, criterion, plugin and metric classes; the training sizes;
    this package's plugin and model settings; names, shapes and dtypes of the frozen backbone.
    A model can replace the last two by defining ``checkpoint_fingerprint()``.
    """
    model = _unwrap(strategy.model)
    plugin_settings = []
    for plugin in strategy.plugins:
        if type(plugin).__module__.startswith("avalanche_litelora."):
            plugin_settings.append(_public_scalars(plugin, skip=_state_attributes(plugin)))
        else:
            plugin_settings.append({})
    evaluator = getattr(strategy, "evaluator", None)
    optimizer = strategy.optimizer
    fingerprint = {
        "strategy": _qualname(strategy),
        "model": _qualname(model),
        "criterion": _qualname(getattr(strategy, "_criterion", None)),
        "optimizer": _qualname(optimizer),
        "optimizer_defaults": {k: v for k, v in sorted(optimizer.defaults.items()) if _is_plain(v)},
        "sizes": [strategy.train_epochs, strategy.train_mb_size, strategy.eval_mb_size],
        "plugins": [_qualname(p) for p in strategy.plugins],
        "plugin_settings": plugin_settings,
        "metrics": [_qualname(m) for m in getattr(evaluator, "metrics", [])],
    }
    custom = getattr(model, "checkpoint_fingerprint", None)
    if callable(custom):
        fingerprint["model_settings"] = custom()
    else:
        settings = {}
        for key in ("rank", "init_logit", "task_incremental", "lora_layer_names"):
            if hasattr(model, key):
                settings[key] = copy.copy(getattr(model, key))
        if hasattr(model, "gate"):
            settings["tau"] = getattr(model.gate, "tau", None)
        settings["backbone"] = _backbone_signature(getattr(model, "backbone", model))
        fingerprint["model_settings"] = settings
    return fingerprint


def _backbone_signature(backbone: nn.Module) -> List[list]:
    """Names, shapes and dtypes of the frozen weights: everything but what the LoRA layers grow."""
    lora_prefixes = tuple(f"{n}." for n, m in backbone.named_modules() if isinstance(m, AdapterLayer) and n)
    signature = []
    for name, tensor in backbone.state_dict().items():
        inside = next((p for p in lora_prefixes if name.startswith(p)), None)
        if torch.is_tensor(tensor) and (inside is None or name.startswith(inside + "base.")):
            signature.append([name, list(tensor.shape), str(tensor.dtype)])
    return signature


#: Classes renamed since checkpoints were first written: a saved fingerprint is read with the
#: new names, so a rename alone never refuses an older checkpoint.
RENAMED_CLASSES = {
    "avalanche_litelora.training.plugins.guards.BankGuardPlugin":
        "avalanche_litelora.training.plugins.guards.AdapterGuardPlugin",
    "avalanche_litelora.training.plugins.share.ShareGuardPlugin":
        "avalanche_litelora.training.plugins.guards.AdapterGuardPlugin",
}


def _with_current_names(saved: Mapping) -> Mapping:
    if "plugins" not in saved:
        return saved
    return {**saved, "plugins": [RENAMED_CLASSES.get(name, name) for name in saved["plugins"]]}


def _fingerprint_diff(saved: Mapping, live: Mapping) -> List[str]:
    saved = _with_current_names(saved)
    keys = sorted(set(saved) | set(live))
    return [
        f"{k}: checkpoint has {_short(saved.get(k))}, this run has {_short(live.get(k))}"
        for k in keys if saved.get(k) != live.get(k)
    ]


def _short(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
