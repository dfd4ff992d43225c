"""Name -> constructor registry for backbones (timm style).

Usage::

    from avalanche_litelora.backbones import create_backbone, list_backbones

    list_backbones()                      # ['timm_local', 'vit_small28_fmnist', ...]
    model = create_backbone("vit_small28_fmnist", num_classes=10)

New constructors are added with the :func:`register_backbone` decorator::

    @register_backbone("my_net")
    def my_net(num_classes: int = 0, **kwargs) -> torch.nn.Module:
        ...

Every constructor returns a ``torch.nn.Module`` that follows timm's classifier
API: a ``num_features`` attribute and ``reset_classifier(num_classes)``.
"""
from __future__ import annotations

import difflib
import fnmatch
from typing import Callable, Dict, List, Optional

import torch.nn as nn

BackboneFn = Callable[..., nn.Module]

_BACKBONES: Dict[str, BackboneFn] = {}

__all__ = [
    "register_backbone",
    "create_backbone",
    "list_backbones",
    "is_backbone",
    "get_backbone_constructor",
]


def _same_function(a: BackboneFn, b: BackboneFn) -> bool:
    # A module reload produces a new function object for the same definition;
    # that must not count as a name clash.
    return a is b or (
        getattr(a, "__module__", None) == getattr(b, "__module__", None)
        and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
    )


def register_backbone(name: str, *, overwrite: bool = False) -> Callable[[BackboneFn], BackboneFn]:
    """Decorator registering ``fn`` as the constructor of backbone ``name``.

    Raises ``ValueError`` if ``name`` is already taken by a different
    constructor, unless ``overwrite=True``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"Backbone name must be a non-empty string, got {name!r}")

    def decorator(fn: BackboneFn) -> BackboneFn:
        if not callable(fn):
            raise TypeError(f"register_backbone({name!r}) must decorate a callable, got {fn!r}")
        existing = _BACKBONES.get(name)
        if existing is not None and not overwrite and not _same_function(existing, fn):
            raise ValueError(
                f"Backbone {name!r} is already registered "
                f"(by {existing.__module__}.{existing.__qualname__}); "
                f"pass overwrite=True to replace it"
            )
        _BACKBONES[name] = fn
        return fn

    return decorator


def list_backbones(pattern: Optional[str] = None) -> List[str]:
    """Sorted names of the registered backbones, optionally filtered by a
    shell-style wildcard ``pattern`` (e.g. ``"vit_small28_*"``)."""
    names = sorted(_BACKBONES)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return names


def is_backbone(name: str) -> bool:
    return name in _BACKBONES


def _unknown(name: object) -> ValueError:
    known = list_backbones()
    close = difflib.get_close_matches(str(name), known, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(
        f"Unknown backbone {name!r}.{hint} Known backbones: {', '.join(known) or '(none registered)'}"
    )


def get_backbone_constructor(name: str) -> BackboneFn:
    try:
        return _BACKBONES[name]
    except (KeyError, TypeError):
        raise _unknown(name) from None


def create_backbone(name: str, **kwargs) -> nn.Module:
    """Build the backbone registered as ``name``; ``kwargs`` go to its constructor.

    Raises ``ValueError`` (listing the known names) for an unknown ``name``.
    """
    return get_backbone_constructor(name)(**kwargs)
