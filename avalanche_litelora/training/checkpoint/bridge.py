"""The one bridge from every checkpoint written since 0.1.0 to today's code.

Everything that reads an older file as if today's code had written it lives here, so the
rest of the checkpoint package only ever sees today's format:

- class names: fingerprints written before the registry (:mod:`avalanche_litelora.registry`)
  hold module paths (``avalanche_litelora.training.strategies.LiteLoRAStrategy``); such a
  path is read as the registered name of its class, after :data:`RENAMED_CLASSES`;
- the metric state a checkpoint pickles names classes by module path too:
  :func:`class_today` finds where a class of a former module lives now
  (:mod:`avalanche_litelora.former_names`, the same table as the old import paths);
- keys and settings added since (:data:`ADDED_KEYS`, :data:`ADDED_SETTINGS`,
  :data:`ADDED_PLUGIN_SETTINGS`) and ``target_modules="auto"``.
"""

from __future__ import annotations

from typing import Mapping, Optional, Tuple

from avalanche_litelora import former_names
from avalanche_litelora.registry import REGISTRY

#: The fingerprint entries that name classes.
CLASS_KEYS = ("strategy", "model", "criterion", "optimizer", "plugins", "metrics")
_PACKAGE = "avalanche_litelora."


def name_today(saved: str) -> str:
    """A class name from a fingerprint as today's code records it: registered names unchanged,
    a module path of ours as its class's registered name, anything else unchanged."""
    if saved in REGISTRY or not saved.startswith(_PACKAGE):
        return saved
    class_name = saved.rsplit(".", 1)[-1]
    class_name = RENAMED_CLASSES.get(class_name, class_name)
    return class_name if class_name in REGISTRY else saved


def class_today(module: str, name: str) -> Optional[Tuple[str, str]]:
    """Where ``module.name``, pickled by an earlier version, lives now; None if it never moved."""
    if not module.startswith(_PACKAGE):
        return None
    short = module[len(_PACKAGE):]
    if short not in former_names.FORMER_MODULES and name not in former_names.RENAMED:
        return None
    try:
        cls = former_names.resolve(short, name)
    except (AttributeError, ImportError):
        return None
    return cls.__module__, cls.__qualname__


#: Classes renamed since checkpoints were first written (by class name): a saved fingerprint is
#: read with the new names, so a rename alone never refuses an older checkpoint.
RENAMED_CLASSES = {"BankGuardPlugin": "AdapterGuardPlugin", "ShareGuardPlugin": "AdapterGuardPlugin"}


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


def _auto_targets(saved: Mapping, live: Mapping) -> Mapping:
    """Before ``target_modules="auto"`` the default was the tuple ``("qkv",)``, saved as ``["qkv"]``.

    A run that saved ``["qkv"]`` adapted timm's ``qkv`` (or, by default, its fallback; the model
    section's layer names still compare what was adapted): it resumes into a run that asks for
    ``"auto"``, and into one that names ``["qkv"]`` as before.
    """
    config, live_config = saved.get("config"), live.get("config")
    if (isinstance(config, Mapping) and isinstance(live_config, Mapping)
            and config.get("target_modules") == ["qkv"] and live_config.get("target_modules") == "auto"):
        return {**saved, "config": {**config, "target_modules": "auto"}}
    return saved


def saved_as_today(saved: Mapping, live: Mapping) -> Tuple[Mapping, Mapping]:
    """Both fingerprints as the current code writes them: class names, new settings, missing keys."""
    saved = dict(saved)
    for key in CLASS_KEYS:
        if isinstance(saved.get(key), str):
            saved[key] = name_today(saved[key])
        elif isinstance(saved.get(key), list):
            saved[key] = [name_today(name) if isinstance(name, str) else name for name in saved[key]]
    saved = _with_added_settings(saved, live)
    saved = _auto_targets(saved, live)
    missing = [k for k in ADDED_KEYS if k not in saved]
    return saved, {k: v for k, v in live.items() if k not in missing}
