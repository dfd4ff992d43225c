"""The base of every method's settings (peft-style configs): checks, keywords, foreign settings.

A strategy takes ``config=`` or the same fields as keywords; either way the settings are
one dataclass of its method's ``config.py`` (:mod:`avalanche_litelora.lora.config`,
:mod:`avalanche_litelora.share.config`), checked in ``__post_init__`` before anything is
built, with an error naming the field. Every config that adds fields registers itself here
(:attr:`SettingsBase.settings_of`), so a strategy given another method's setting can say whose.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import MISSING, fields
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, TypeVar

from avalanche_litelora import checks
from avalanche_litelora.adapters.inject import AUTO_TARGETS

C = TypeVar("C", bound="SettingsBase")


#: Every config class that adds fields, in the order they were defined (see ``settings_of``).
REGISTERED_CONFIGS: List[type] = []


class SettingsBase:
    """Field checks (:mod:`avalanche_litelora.checks`) with the config's name in every message."""

    #: The fields a strategy passes on to its model class (the rest configure plugins).
    model_fields: Tuple[str, ...] = ()
    #: Whose settings the fields this class adds are, in words ("LiteLoRA"); a class that sets
    #: it is registered, so a strategy can name the method a foreign keyword belongs to.
    settings_of: Optional[str] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "settings_of" in cls.__dict__:
            REGISTERED_CONFIGS.append(cls)

    def _name(self, field: str) -> str:
        return f"{type(self).__name__}.{field}"

    def _fail(self, name: str, what: str, exc=ValueError):
        raise exc(f"{self._name(name)} must be {what}, got {getattr(self, name)!r}")

    def _count(self, name: str, minimum: int) -> None:
        checks.check_count(self._name(name), getattr(self, name), minimum)

    def _real(self, name: str, *, positive: bool = False, at_least_zero: bool = False) -> None:
        checks.check_real(self._name(name), getattr(self, name), positive=positive, at_least_zero=at_least_zero)

    def _flag(self, name: str) -> None:
        checks.check_flag(self._name(name), getattr(self, name))

    def _choice(self, name: str, choices) -> None:
        checks.check_choice(self._name(name), getattr(self, name), choices)

    def _targets(self) -> None:
        value = self.target_modules
        if isinstance(value, str):  # AUTO_TARGETS, or one module name
            return
        if not isinstance(value, Sequence) or not value or not all(isinstance(p, str) and p for p in value):
            self._fail("target_modules", "a module name or a non-empty sequence of names", TypeError)

    def model_keywords(self) -> Dict[str, Any]:
        """The settings the strategy's model class takes, by keyword."""
        return {name: getattr(self, name) for name in self.model_fields}

    @classmethod
    def from_keywords(cls: Type[C], config: Optional[C], keywords: Dict[str, Any]) -> Tuple[C, Dict[str, Any]]:
        """``(config, the keywords left for the template)``: a config or its fields, not both."""
        names = {f.name for f in fields(cls)}
        given = {k: keywords.pop(k) for k in list(keywords) if k in names}
        if config is None:
            return cls(**given), keywords
        if not isinstance(config, cls):
            raise TypeError(f"config must be a {cls.__name__}, got {type(config).__name__}")
        if given:
            raise TypeError(
                f"{sorted(given)} given both as keywords and through config=: set them in the "
                f"{cls.__name__} (dataclasses.replace(config, ...)) or pass no config"
            )
        return config, keywords


def refuse_foreign_settings(config_class: type, keywords: Dict[str, Any], strategy: str) -> None:
    """A keyword that is another method's setting names that method, not a typo."""
    own = {f.name for f in fields(config_class)}
    for other in REGISTERED_CONFIGS:
        foreign = sorted(set(keywords) & ({f.name for f in fields(other)} - own))
        if foreign:
            raise TypeError(
                f"{foreign} are {other.settings_of} settings, not settings of {strategy} "
                f"(its settings: {config_class.__name__})"
            )


def accepts_config_keywords(cls=None, *, config_class=None):
    """Class decorator: ``cls.__init__``'s signature lists the fields of ``config_class``
    (default ``cls.config_class``; a tuple of configs lists all their fields).

    Avalanche checks a strategy's keywords against the ``__init__`` signatures of its
    classes, and ``help()`` and IDEs read them too; the fields themselves stay in the config.
    """
    if cls is None:
        return functools.partial(accepts_config_keywords, config_class=config_class)
    config_classes = config_class or cls.config_class
    if not isinstance(config_classes, tuple):
        config_classes = (config_classes,)
    init = inspect.unwrap(cls.__init__)  # a base's own signature, not one a decorator widened

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)

    signature = inspect.signature(init)
    own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    rest = [p for p in signature.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    taken = {p.name for p in own}
    settings = []
    for config in config_classes:
        for f in fields(config):
            if f.name not in taken:
                taken.add(f.name)
                default = f.default if f.default is not MISSING else f.default_factory()
                settings.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default))
    __init__.__signature__ = signature.replace(parameters=own + settings + rest)
    cls.__init__ = __init__
    return cls


def every_setting_name() -> set:
    """The fields of every registered config: keywords some strategy of the package takes."""
    return {f.name for config in REGISTERED_CONFIGS for f in fields(config)}
