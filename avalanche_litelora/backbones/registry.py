"""``create_backbone(name)``: ``timm.create_model`` for the models this package registers
with timm, plus a small registry for the backbones that are not timm models.

    create_backbone("vit_small28_fmnist", num_classes=10)
    timm.create_model("vit_small28_fmnist", pretrained=True, num_classes=10)   # the same

Why it stays: for the timm models (:func:`register_timm_backbone`, i.e. timm's
``register_model``) it differs from timm only in that ``pretrained`` defaults to whether
shipped weights exist, so a bare name gives the pretrained backbone the benchmarks freeze.
The text encoders, ``timm_local`` and ``efficientnet_lite0`` (an input transform around
timm's ``tf_efficientnet_lite0``; timm already owns that name for another model) are not
timm entrypoints: they are registered here with :func:`register_backbone`. Every backbone
follows timm's classifier API (``num_features``, ``reset_classifier(num_classes)``).
"""
from __future__ import annotations

import difflib
import fnmatch
from typing import Callable, Dict, List, Optional, Set

import timm
import torch.nn as nn
from timm.models import register_model

BackboneFn = Callable[..., nn.Module]

_BACKBONES: Dict[str, BackboneFn] = {}
_TIMM_BACKBONES: Set[str] = set()

__all__ = ["register_backbone", "register_timm_backbone", "create_backbone", "list_backbones"]


def _same_function(a: BackboneFn, b: BackboneFn) -> bool:
    # A module reload makes a new function object for the same definition: no clash.
    return a is b or (
        getattr(a, "__module__", None) == getattr(b, "__module__", None)
        and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
    )


def register_timm_backbone(fn: BackboneFn) -> BackboneFn:
    """timm's ``register_model`` (define the module's ``default_cfgs`` first), also
    listing ``fn.__name__`` among the backbones."""
    register_model(fn)
    _TIMM_BACKBONES.add(fn.__name__)
    return fn


def register_backbone(name: str, *, overwrite: bool = False) -> Callable[[BackboneFn], BackboneFn]:
    """Decorator registering ``fn`` as the constructor of the (non-timm) backbone ``name``.

    Raises ``ValueError`` if ``name`` is taken by another constructor, unless ``overwrite``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"Backbone name must be a non-empty string, got {name!r}")

    def decorator(fn: BackboneFn) -> BackboneFn:
        if not callable(fn):
            raise TypeError(f"register_backbone({name!r}) must decorate a callable, got {fn!r}")
        old = _BACKBONES.get(name)
        if not overwrite and (name in _TIMM_BACKBONES or (old is not None and not _same_function(old, fn))):
            by = f"{old.__module__}.{old.__qualname__}" if old is not None else "a timm entrypoint"
            raise ValueError(f"Backbone {name!r} is already registered (by {by}); pass overwrite=True to replace it")
        _BACKBONES[name] = fn
        return fn

    return decorator


def list_backbones(pattern: Optional[str] = None) -> List[str]:
    """Sorted backbone names, optionally filtered by a shell-style ``pattern``."""
    names = sorted(set(_BACKBONES) | _TIMM_BACKBONES)
    return names if pattern is None else [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def create_backbone(name: str, **kwargs) -> nn.Module:
    """Build backbone ``name`` with ``kwargs``; unknown names raise ``ValueError`` listing
    the known ones."""
    if isinstance(name, str) and name in _BACKBONES:
        return _BACKBONES[name](**kwargs)
    if isinstance(name, str) and name in _TIMM_BACKBONES:
        kwargs.setdefault("pretrained", timm.is_model_pretrained(name))
        return timm.create_model(name, **kwargs)
    known = list_backbones()
    close = difflib.get_close_matches(str(name), known, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"Unknown backbone {name!r}.{hint} Known backbones: {', '.join(known) or '(none registered)'}")
