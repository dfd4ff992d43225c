"""The configuration fingerprint: what must be equal for a checkpoint to resume into a strategy.

Its value is stored in every checkpoint and compared key by key on load, so any change to what
it collects (or how) makes older checkpoints refuse to load, unless :data:`RENAMED_CLASSES` or
:data:`ADDED_KEYS` says how to read them; it lives alone to keep that visible.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from avalanche_litelora.adapters.model import backbone_signature
from avalanche_litelora.training.checkpoint.format import _is_plain
from avalanche_litelora.adapters.access import unwrap_ddp
from avalanche_litelora.training.checkpoint.parts import _qualname


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


#: Classes renamed since checkpoints were first written: a saved fingerprint is read with the
#: new names, so a rename alone never refuses an older checkpoint.
RENAMED_CLASSES = {
    "avalanche_litelora.training.plugins.guards.BankGuardPlugin":
        "avalanche_litelora.training.plugins.guards.AdapterGuardPlugin",
    "avalanche_litelora.share.plugins.ShareGuardPlugin":
        "avalanche_litelora.training.plugins.guards.AdapterGuardPlugin",
}


#: Keys that checkpoints written before them lack: such a checkpoint is compared without them
#: (``"config"``: the strategy's settings, added 2026-12-06; the plugin and model settings
#: those checkpoints do hold cover the same choices).
ADDED_KEYS = ("config",)


#: Settings added inside a fingerprint section, with the value every checkpoint written
#: before them implicitly has (the behaviour the code had then). Such a checkpoint is read
#: with that value, so it resumes into a run with the same behaviour and names the setting
#: when the run's differs (2026-12-06: the reference code's mechanics became settings).
ADDED_SETTINGS = {
    "model_settings": {"magnitude_scope": "per_layer", "boundary": "preserve"},
    "config": {"magnitude_scope": "per_layer", "boundary": "preserve", "gate_sampling": "per_forward",
               "lambda_rule": "absolute"},
}


#: Plugin settings added since checkpoints were first written, with their value before.
ADDED_PLUGIN_SETTINGS = {"gate_sampling": "per_forward", "lambda_rule": "absolute"}


def _filled(saved: Mapping, live: Mapping, defaults: Mapping) -> Mapping:
    return {**saved, **{k: v for k, v in defaults.items() if k in live and k not in saved}}


def _with_added_settings(saved: Mapping, live: Mapping) -> Mapping:
    """``saved`` with each added setting that the live run has and the file lacks, at its old value."""
    out = dict(saved)
    for section, defaults in ADDED_SETTINGS.items():
        if isinstance(out.get(section), Mapping) and isinstance(live.get(section), Mapping):
            out[section] = _filled(out[section], live[section], defaults)
    plugins, live_plugins = out.get("plugin_settings"), live.get("plugin_settings")
    if isinstance(plugins, list) and isinstance(live_plugins, list) and len(plugins) == len(live_plugins):
        out["plugin_settings"] = [_filled(p, q, ADDED_PLUGIN_SETTINGS) if isinstance(p, Mapping) else p
                                  for p, q in zip(plugins, live_plugins)]
    return out


def _as_today(saved: Mapping, live: Mapping) -> Tuple[Mapping, Mapping]:
    """Both fingerprints as the current code writes them: renamed classes, missing new keys."""
    if "plugins" in saved:
        saved = {**saved, "plugins": [RENAMED_CLASSES.get(name, name) for name in saved["plugins"]]}
    saved = _with_added_settings(saved, live)
    missing = [k for k in ADDED_KEYS if k not in saved]
    return saved, {k: v for k, v in live.items() if k not in missing}


def _fingerprint_diff(saved: Mapping, live: Mapping, prefix: str = "") -> List[str]:
    """One line per differing entry; a setting inside a dict (``config.refit_lr``) by its name."""
    if not prefix:
        saved, live = _as_today(saved, live)
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
