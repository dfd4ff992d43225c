"""Stable names for the package's strategies, models, plugins and metrics (peft's ``peft_type``).

A checkpoint's fingerprint records what a run was built from. Recording a class by its module
path would pin the package's layout: moving a file would refuse every saved run. A class
registered here is recorded by its name instead, and moves freely; any other class (a user's,
a subclass of ours, Avalanche's, torch's) keeps its module path.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, TypeVar

T = TypeVar("T", bound=type)

#: Registered name -> class. Names are unique across kinds (they are class names today).
REGISTRY: Dict[str, type] = {}


def register(cls: T) -> T:
    """Class decorator: record ``cls`` in checkpoints as ``cls.__name__``, wherever it lives."""
    name = cls.__name__
    if REGISTRY.get(name, cls) is not cls:
        raise ValueError(f"{name!r} is already registered by {REGISTRY[name].__module__}")
    REGISTRY[name] = cls
    cls.registered_name = name
    return cls


def registered_name(obj: Any) -> Optional[str]:
    """The name ``obj``'s class (or ``obj``, a class) registered itself under; a subclass that did
    not register has none, so a user's subclass is never mistaken for ours."""
    cls = obj if isinstance(obj, type) else type(obj)
    return cls.__dict__.get("registered_name")


def stable_name(obj: Any) -> str:
    """What a checkpoint records for ``obj``'s class: its registered name, else its module path."""
    cls = obj if isinstance(obj, type) else type(obj)
    return registered_name(cls) or f"{cls.__module__}.{cls.__qualname__}"
