"""The import paths and names of version 0.1.0, kept working for one release with a DeprecationWarning.

One table serves both kinds of old reference: old code importing a moved module or name, and
old checkpoints whose pickled metric state names a class by its old module path (see
:mod:`avalanche_litelora.training.checkpoint.bridge`). A moved module is served by a small
proxy module (installed on ``sys.meta_path`` by the package's ``__init__``) that forwards
every name to where it lives now; a package that still exists but lost names forwards them
through its module-level ``__getattr__`` (:func:`getattr_for`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from typing import Callable, Dict, Tuple

_P = "avalanche_litelora."

#: Former module -> the modules its names live in now, searched in order.
FORMER_MODULES: Dict[str, Tuple[str, ...]] = {
    "config": ("lora.config", "share.config", "adapters.config"),
    "models": ("lora", "adapters"),
    "models.access": ("adapters.access",),
    "models.adapter_model": ("adapters.model",),
    "models.heads": ("adapters.heads",),
    "models.pending_head": ("adapters.pending_head",),
    "models.seeded_heads": ("adapters.seeded_heads",),
    "models.seeding": ("adapters.seeding",),
    "models.surgery": ("adapters.surgery",),
    "models.lora_classifier": ("lora.model",),
    "models.bank_loading": ("lora.loading",),
    "models.bank_readouts": ("lora.readouts",),
    "models.phases": ("lora.phases",),
    "models.task_routed": ("lora.task_routed",),
    "lora.adapter_layer": ("adapters.layer",),
    "lora.bank": ("adapters.stacked", "lora.layer"),
    "lora.inject": ("adapters.inject", "lora.layer"),
    "training.strategies": ("lora.strategies",),
    "training.share_strategy": ("share.strategy",),
    "training.masking": ("training.losses",),
    "training.plugins.candidate": ("lora.plugins.candidate",),
    "training.plugins.candidate_losses": ("lora.plugins.candidate_losses",),
    "training.plugins.selection": ("lora.plugins.selection",),
    "training.plugins.prune": ("lora.plugins.prune",),
    "training.plugins.freeze": ("lora.plugins.freeze",),
    "training.plugins.merge": ("lora.plugins.merge",),
    "training.plugins.task_routing": ("lora.plugins.task_routing",),
    "training.plugins.share": ("share.plugins",),
    "metrics._bank_access": ("adapters.access", "metrics.bank_readouts"),
}

#: Former name -> (module, name) now, for names that changed, wherever they were imported from.
RENAMED: Dict[str, Tuple[str, str]] = {
    old: tuple(new.split(":")) for old, new in (line.split() for line in """
        unwrap                  adapters.access:unwrap_ddp
        model_of_type           adapters.access:adapter_model_of
        adapter_model           adapters.access:adapter_model_of
        lora_model              former_names:_lora_model
        share_model             former_names:_share_model
        BankLookup              metrics.bank_readouts:OptionalLoRAClassifier
        unwrap_model            training.distributed:drop_ddp_wrapper
        ALL_CONFIGS             adapters.config:REGISTERED_CONFIGS
        _Checked                adapters.config:SettingsBase
        DEFAULT_TARGET_MODULES  adapters.inject:AUTO_TARGETS
        BankGuardPlugin         training.plugins.guards:AdapterGuardPlugin
        ShareGuardPlugin        training.plugins.guards:AdapterGuardPlugin
    """.strip().splitlines())
}

#: Where a name that left a package that still exists (``training``, ``training.plugins``,
#: ``lora``) is looked up: the method folders and the shared base, in this order.
_HOMES = ("lora", "share", "adapters", "training.plugins")


def _model_of(strategy, module: str, kind: str):
    """The one accessor, for a model class named by module and name (this module imports
    nothing of the package at import time: every package module may import it)."""
    access = importlib.import_module(_P + "adapters.access")
    return access.adapter_model_of(strategy, getattr(importlib.import_module(_P + module), kind))


def _lora_model(strategy):
    """Former ``models.access.lora_model``: the LoRA bank behind a strategy."""
    return _model_of(strategy, "lora.model", "LoRAClassifier")


def _share_model(strategy):
    """Former ``training.plugins.share.share_model``: the Share model behind a strategy."""
    return _model_of(strategy, "share.model", "ShareClassifier")


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated and will be removed in the next release: use {new}",
                  DeprecationWarning, stacklevel=3)


def resolve(former_module: str, name: str):
    """The object a former module's name refers to now (``former_module`` without the package prefix)."""
    if name in RENAMED:
        module, new_name = RENAMED[name]
        return getattr(importlib.import_module(_P + module), new_name)
    for module in FORMER_MODULES.get(former_module, ()) + _HOMES:
        target = importlib.import_module(_P + module)
        if name in vars(target):
            return vars(target)[name]
        try:  # a submodule of a package the former one became
            return importlib.import_module(f"{_P}{module}.{name}")
        except ModuleNotFoundError:
            continue
    raise AttributeError(f"module {_P + former_module!r} has no attribute {name!r}")


def where_now(name: str, value) -> str:
    if name in RENAMED:
        module, new_name = RENAMED[name]
        return f"{_P}{module}.{new_name}"
    return f"{getattr(value, '__module__', None) or 'avalanche_litelora'}.{name}"


def _is_submodule(module_name: str, name: str) -> bool:
    path = getattr(sys.modules.get(module_name), "__path__", None)
    return bool(path) and importlib.machinery.PathFinder.find_spec(f"{module_name}.{name}", path) is not None


def getattr_for(module_name: str) -> Callable[[str], object]:
    """A module-level ``__getattr__`` for a package that still exists but lost former names."""
    short = module_name[len(_P):]

    def __getattr__(name: str):
        if name.startswith("__") or _is_submodule(module_name, name):  # the import system's to load
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        value = resolve(short, name)
        _warn(f"{module_name}.{name}", where_now(name, value))
        return value

    return __getattr__


class _FormerModule(types.ModuleType):
    """A former module: every attribute forwarded to where it lives now."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        value = resolve(self.__name__[len(_P):], name)
        if name in RENAMED:
            _warn(f"{self.__name__}.{name}", where_now(name, value))
        return value


class _FormerModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``import avalanche_litelora.<former module>`` with a forwarding proxy, and a warning."""

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(_P) or fullname[len(_P):] not in FORMER_MODULES:
            return None
        is_package = any(k.startswith(fullname[len(_P):] + ".") for k in FORMER_MODULES)
        return importlib.machinery.ModuleSpec(fullname, self, is_package=is_package)

    def create_module(self, spec):
        module = _FormerModule(spec.name)
        if spec.submodule_search_locations is not None:
            module.__path__ = []
        return module

    def exec_module(self, module):
        now = ", ".join(_P + m for m in FORMER_MODULES[module.__name__[len(_P):]])
        warnings.warn(f"{module.__name__} is deprecated and will be removed in the next release: "
                      f"its names live in {now}", DeprecationWarning, stacklevel=2)


_FINDER = _FormerModuleFinder()


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once): a former module is never a file any more."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
