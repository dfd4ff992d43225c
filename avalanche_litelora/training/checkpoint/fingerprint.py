"""The configuration fingerprint: what must be equal for a checkpoint to resume into a strategy.

Its value is stored in every checkpoint and compared key by key on load, so any change to what
it collects (or how) makes older checkpoints refuse to load, unless
:mod:`~avalanche_litelora.training.checkpoint.bridge` says how to read them; it lives alone to
keep that visible. Classes are recorded by their registered name
(:mod:`avalanche_litelora.registry`), so moving a module never refuses a saved run.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Sequence

from avalanche_litelora.adapters.model import backbone_signature
from avalanche_litelora.training.checkpoint.format import _is_plain
from avalanche_litelora.adapters.access import unwrap_ddp
from avalanche_litelora.registry import stable_name
from avalanche_litelora.training.checkpoint.bridge import saved_as_today


def _public_scalars(obj: Any) -> Dict[str, Any]:
    return {
        k: v for k, v in sorted(vars(obj).items())
        if not k.startswith("_") and (v is None or isinstance(v, (bool, int, float, str)))
    }


def config_fingerprint(strategy) -> Dict[str, Any]:
    """What must be equal for a checkpoint to resume into ``strategy``.

    The strategy, model, optimizer, criterion, plugin and metric classes; the training sizes;
    the strategy's settings (``asdict(strategy.config)``) and its plugins' public settings;
    the model's own (``model.checkpoint_fingerprint()``; for any other model, the names,
    shapes and dtypes of its weights).
    """
    model = unwrap_ddp(strategy.model)
    plugin_settings = []
    for plugin in strategy.plugins:
        if type(plugin).__module__.startswith("avalanche_litelora."):
            plugin_settings.append(_public_scalars(plugin))
        else:
            plugin_settings.append({})
    evaluator = getattr(strategy, "evaluator", None)
    optimizer = strategy.optimizer
    fingerprint = {
        "strategy": stable_name(strategy),
        "model": stable_name(model),
        "criterion": stable_name(getattr(strategy, "_criterion", None)),
        "optimizer": stable_name(optimizer),
        "optimizer_defaults": {k: v for k, v in sorted(optimizer.defaults.items()) if _is_plain(v)},
        "sizes": [strategy.train_epochs, strategy.train_mb_size, strategy.eval_mb_size],
        "plugins": [stable_name(p) for p in strategy.plugins],
        "plugin_settings": plugin_settings,
        "metrics": [stable_name(m) for m in getattr(evaluator, "metrics", [])],
    }
    config = getattr(strategy, "config", None)
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        fingerprint["config"] = {  # any sequence of names (a tuple, a user's list type) as a list
            k: list(v) if isinstance(v, Sequence) and not isinstance(v, str) else v
            for k, v in dataclasses.asdict(config).items()
        }
    custom = getattr(model, "checkpoint_fingerprint", None)
    if callable(custom):
        fingerprint["model_settings"] = custom()
    else:
        fingerprint["model_settings"] = {"backbone": backbone_signature(getattr(model, "backbone", model))}
    return fingerprint


def _fingerprint_diff(saved: Mapping, live: Mapping, prefix: str = "") -> List[str]:
    """One line per differing entry; a setting inside a dict (``config.refit_lr``) by its name."""
    if not prefix:
        saved, live = saved_as_today(saved, live)
    lines = []
    for k in sorted(set(saved) | set(live)):
        old, new = saved.get(k), live.get(k)
        if old == new:
            continue
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            lines += _fingerprint_diff(old, new, f"{prefix}{k}.")
        else:
            lines.append(f"{prefix}{k}: checkpoint has {_short(old)}, this run has {_short(new)}")
    return lines


def _short(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
