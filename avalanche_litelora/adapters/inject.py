"""Find the target ``nn.Linear`` layers of a model and swap in adapter-layer wrappers.

Every method family injects through here with its own :class:`AdapterLayer` subclass
(LoRA's :func:`~avalanche_litelora.lora.layer.inject_lora`, Share's model).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Dict, Optional, Sequence, Tuple, Type, Union

from torch import nn

from avalanche_litelora.adapters.layer import AdapterLayer, is_adaptable, qkv_slices
from avalanche_litelora.former_names import getattr_for as _getattr_for

#: ``target_modules="auto"``, the default: timm ViT attention's fused projection ``qkv``, on
#: its q and v slices. A model without ``qkv`` falls back to a transformers encoder's query /
#: value projections, and a model with neither (an MLP, a CNN) to every Linear and 1x1 conv
#: outside the classifier, so every strategy runs with its defaults on any backbone (see
#: :func:`find_target_modules`). Any explicit list, ``("qkv",)`` included, never falls back.
AUTO_TARGETS = "auto"
#: What ``target_modules`` may be: :data:`AUTO_TARGETS`, one module name, or a sequence of names.
Targets = Union[str, Sequence[str]]
_TIMM_ATTENTION = ("qkv",)
_ATTENTION_FALLBACK = ("query", "value")


def is_auto(target_modules) -> bool:
    """``target_modules`` asks for the default choice (:data:`AUTO_TARGETS`)."""
    return isinstance(target_modules, str) and target_modules == AUTO_TARGETS


def _matches(name: str, pattern: str) -> bool:
    """A pattern matches a module name exactly, as a dotted suffix, or as a glob."""
    return name == pattern or name.endswith("." + pattern) or fnmatchcase(name, pattern)


def linear_module_names(model: nn.Module) -> list:
    """Modules LoRA can wrap: Linear layers and pointwise (1x1) convolutions."""
    return [n for n, m in model.named_modules() if is_adaptable(m)]


def _excluded(name: str, exclude: Sequence[str]) -> bool:
    """``exclude`` names modules and everything inside them (a classifier's inner Linears too)."""
    return any(name == e or name.startswith(e + ".") for e in exclude)


#: Why the default settles on each choice, for the model's description.
_DEFAULT_REASONS = {
    _TIMM_ATTENTION: "the default target_modules: timm's fused attention projections 'qkv', "
    "on their q and v slices",
    _ATTENTION_FALLBACK: "the default target_modules fell back to a transformers encoder's 'query' "
    "and 'value' projections (this backbone has no timm 'qkv' layer)",
}
_EVERY_LINEAR_REASON = (
    "the default target_modules fell back to every Linear and 1x1 conv outside the classifier "
    "(this backbone has neither a timm 'qkv' layer nor a transformers 'query' / 'value' projection); "
    "give target_modules= to choose"
)


def resolve_default_targets(model: nn.Module, exclude: Sequence[str] = ()) -> Tuple[Sequence[str], str]:
    """What :data:`AUTO_TARGETS` means on ``model``, and why, in words.

    ``(patterns, why)``: timm's ``qkv``, else a transformers encoder's ``query`` / ``value``,
    else the names of every adaptable module outside ``exclude``.
    """
    adaptable = [n for n in linear_module_names(model) if not _excluded(n, exclude)]
    for patterns in (_TIMM_ATTENTION, _ATTENTION_FALLBACK):
        if any(_matches(n, p) for n in adaptable for p in patterns):
            return patterns, _DEFAULT_REASONS[patterns]
    return adaptable, _EVERY_LINEAR_REASON


def explain_targets(model: nn.Module, target_modules: Sequence[str], exclude: Sequence[str] = ()) -> str:
    """Why ``target_modules`` picks what it picks on ``model`` (call before injection)."""
    if is_auto(target_modules):
        return resolve_default_targets(model, exclude)[1]
    given = [target_modules] if isinstance(target_modules, str) else list(target_modules)
    return f"target_modules={given}, as given"


def find_target_modules(
    model: nn.Module, target_modules: Sequence[str], exclude: Sequence[str] = ()
) -> list:
    """Names of the Linear (or pointwise conv) modules matched by ``target_modules``.

    Given :data:`AUTO_TARGETS`, a model without a match takes the fallbacks that constant
    describes; an explicit list never falls back. ``exclude`` keeps modules out, with
    everything inside them.
    """
    if is_auto(target_modules):
        resolved, _ = resolve_default_targets(model, exclude)
        if isinstance(resolved, list) and resolved:
            return resolved  # every adaptable module, by name
        target_modules = resolved or _TIMM_ATTENTION  # nothing to adapt: the error below says so
    if isinstance(target_modules, str):
        target_modules = [target_modules]
    try:
        patterns = list(target_modules)
    except TypeError:
        raise TypeError(
            f"target_modules must be a module name or a sequence of names, got {target_modules!r}"
        ) from None
    bad = [p for p in patterns if not isinstance(p, str) or not p]
    if bad:
        raise TypeError(f"target_modules entries must be non-empty strings, got {bad!r}")
    if not patterns:
        raise ValueError("target_modules is empty")
    duplicates = sorted({p for p in patterns if patterns.count(p) > 1})
    if duplicates:
        raise ValueError(f"duplicate entries in target_modules: {duplicates}")
    names = [
        n
        for n, m in model.named_modules()
        if is_adaptable(m)
        and not _excluded(n, exclude)
        and any(_matches(n, p) for p in patterns)
    ]
    if not names:
        raise ValueError(
            f"no nn.Linear (or 1x1 conv) module matches target_modules={patterns}; "
            f"the model's Linear modules are: {linear_module_names(model)}"
        )
    return names


def _slices_for(name: str, layer: nn.Linear) -> Optional[dict]:
    """timm's fused ``qkv`` gets adapters on q and v only; any other layer on its whole output."""
    if (
        isinstance(layer, nn.Linear)
        and name.split(".")[-1] == "qkv"
        and layer.out_features == 3 * layer.in_features
    ):
        return qkv_slices(layer)
    return None


def build_adapter_layers(model: nn.Module, target_modules: Targets = AUTO_TARGETS, rank: int = 10,
                         exclude: Sequence[str] = (), *, layer_type: Type[AdapterLayer]) -> Dict[str, AdapterLayer]:
    """Every check, and the wrappers of the targeted layers by module name; ``model`` is unchanged.

    :func:`swap_in_adapter_layers` puts them in place. The adapter models remove the
    backbone's classifier in between: timm's ``reset_classifier`` reads layers (MobileNetV3's
    ``conv_head``) that must not be wrapped yet.
    """
    names = find_target_modules(model, target_modules, exclude)
    if not (isinstance(layer_type, type) and issubclass(layer_type, AdapterLayer)):
        raise TypeError(f"layer_type must be an AdapterLayer subclass, got {layer_type!r}")
    if any(isinstance(m, AdapterLayer) for m in model.modules()):
        raise ValueError("model already holds adapter layers; inject_lora runs once per model")
    modules = dict(model.named_modules())
    # Building every wrapper validates rank against every layer.
    return {n: layer_type(modules[n], rank, _slices_for(n, modules[n])) for n in names}


def swap_in_adapter_layers(model: nn.Module, wrappers: Dict[str, AdapterLayer]) -> Dict[str, AdapterLayer]:
    """Freeze ``model`` and put each wrapper where its layer was (by module name); nothing to check."""
    for p in model.parameters():
        p.requires_grad_(False)
    for name, wrapper in wrappers.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        nn.Module.__setattr__(parent, child, wrapper)  # not a wrapper module's forwarding setattr
    return wrappers


def inject_adapters(model: nn.Module, target_modules: Targets = AUTO_TARGETS, rank: int = 10,
                    exclude: Sequence[str] = (), *, layer_type: Type[AdapterLayer]) -> Dict[str, AdapterLayer]:
    """Swap the targeted Linear / 1x1-conv layers for ``layer_type`` wrappers in place; freeze the rest.

    All checks run before the first swap, so a bad argument leaves ``model`` untouched.
    ``exclude`` keeps modules (the classifier, with what it holds) out. Returns the wrappers
    by module name.
    """
    wrappers = build_adapter_layers(model, target_modules, rank, exclude, layer_type=layer_type)
    return swap_in_adapter_layers(model, wrappers)


__getattr__ = _getattr_for(__name__)  # DEFAULT_TARGET_MODULES, the former default, means "auto"
