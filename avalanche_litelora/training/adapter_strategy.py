"""The base of every strategy here: a ``SupervisedTemplate`` that wires a backbone into an
adapter model and appends its method's plugins.

A method is a config class, a model class and the plugins :meth:`AdapterStrategy._method_plugins`
returns (as Avalanche's ``LwF`` or ``EWC`` append theirs); everything else, from keyword
checks to the backbone surgery, is done once here.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

import torch
from avalanche.core import BasePlugin
from avalanche.training.supervised import Naive
from avalanche.training.templates import SupervisedTemplate
from avalanche.training.templates.base import PositionalArgumentsDeprecatedWarning
from torch import nn
from torch.nn import CrossEntropyLoss
from torch.optim import Optimizer

from avalanche_litelora.checks import check_count
from avalanche_litelora.adapters.config import every_setting_name, refuse_foreign_settings
from avalanche_litelora.adapters.access import adapter_model_of
from avalanche_litelora.adapters.model import AdapterModel, user_stacklevel
from avalanche_litelora.training.checkpoint import CheckpointMixin
from avalanche_litelora.training.compatibility import check_plugins
from avalanche_litelora.training.distributed import RankSafeTemplateMixin, refuse_unsupported_plugins
from avalanche_litelora.training.first_experience import HeadFromFirstExperienceMixin
from avalanche_litelora.training.plugins.guards import AdapterGuardPlugin
from avalanche_litelora.training.protocol import check_lifecycle_order
from avalanche_litelora.training.rwalk import repairs_for
from avalanche_litelora.training.stalled_training import StalledTrainingCheckMixin


logger = logging.getLogger(__name__)

#: What positional arguments mean: Avalanche's ``Naive`` keywords, in order (``model``,
#: ``optimizer``, ``criterion``, ``train_mb_size``, ...), read from its signature.
POSITIONAL_ARGUMENTS = tuple(
    p.name for p in inspect.signature(Naive.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY
)


#: The minibatch sizes of a strategy built with only ``model`` and ``optimizer``.
#: Avalanche's templates default to 1 and 1, made for a model that trains whole: on
#: PermutedMNIST that is 60,000 optimizer steps per experience, as many again in LiteLoRA's
#: selection phase (its steps follow the minibatches), and an evaluation of 500 images that
#: took over two minutes on a CPU. A frozen backbone under rank-4 adapters gains nothing from
#: batch-1 steps. 64 and 256 are the sizes the package's benchmarks run with
#: (``benchmarks.harness.runner.RunSettings``): evaluation keeps no activations for a backward pass
#: and takes four times as many. An explicit value (keyword or positional, ``eval_mb_size=None``
#: included, Avalanche's "as train_mb_size") always wins.
DEFAULT_MINIBATCH_SIZES = {"train_mb_size": 64, "eval_mb_size": 256}


def _keywords_from_positional(strategy: str, args: tuple, kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Positional arguments read as ``Naive`` reads them, with Avalanche's deprecation warning."""
    if len(args) > len(POSITIONAL_ARGUMENTS):
        raise TypeError(
            f"{strategy} takes at most {len(POSITIONAL_ARGUMENTS)} positional arguments "
            f"({', '.join(POSITIONAL_ARGUMENTS)}, as Avalanche's Naive), got {len(args)}: "
            "pass the others by keyword"
        )
    named = dict(zip(POSITIONAL_ARGUMENTS, args))
    both = sorted(set(named) & set(kwargs))
    if both:
        raise TypeError(f"{strategy} got {both} both by position and by keyword: give each once")
    warnings.warn(
        f"Avalanche is transitioning to strategy constructors that accept named (keyword) "
        f"arguments only. You are passing {len(args)} positional arguments to {strategy}, read as "
        f"{', '.join(named)} (as Avalanche's Naive reads them): pass them by name "
        f"({', '.join(f'{n}=...' for n in named)}). The ability to pass positional arguments "
        "will be removed in the future.",
        PositionalArgumentsDeprecatedWarning,
        stacklevel=user_stacklevel(),
    )
    return {**named, **kwargs}


def _accepted_keywords(cls: type) -> set:
    """Every keyword the ``__init__`` of ``cls`` or of a class above it names (as Avalanche checks)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = set()
    for c in cls.__mro__:
        try:
            parameters = inspect.signature(c.__init__).parameters
        except (TypeError, ValueError):  # a builtin without a signature takes no keywords of ours
            continue
        names.update(name for name, p in parameters.items() if p.kind in kinds and name != "self")
    return names


def _refuse_unknown_keywords(cls: type, kwargs: Dict[str, Any]) -> None:
    """A keyword no class above ``cls`` names, and no method's config holds, is a typo;
    another method's setting goes on, for :func:`refuse_foreign_settings` to name its method."""
    unknown = sorted(set(kwargs) - _accepted_keywords(cls) - every_setting_name())
    if unknown:
        raise TypeError(
            f"{cls.__name__} got unexpected keyword arguments {unknown}: neither its settings "
            f"({cls.config_class.__name__}) nor Avalanche's SupervisedTemplate take them; check "
            "their spelling"
        )


def avalanche_calling_conventions(init):
    """``__init__`` decorator: the calls Avalanche's strategies accept, errors naming the strategy.

    Avalanche wraps every template's ``__init__`` so that positional arguments still work,
    with a ``PositionalArgumentsDeprecatedWarning``; the config-keywords decorator unwraps
    that wrapper to widen the signature. Here they work as for ``Naive``
    (``LiteLoRAStrategy(model, optimizer, criterion)``), and a missing or unknown argument
    names the strategy, not this base class. The wrapper keeps ``init``'s signature and has
    no ``__wrapped__``, so ``inspect.unwrap`` stops at it.
    """
    signature = inspect.signature(init)
    required = [n for n, p in signature.parameters.items() if p.kind is p.KEYWORD_ONLY and p.default is p.empty]

    def __init__(self, *args, **kwargs):
        cls = type(self)
        if args:
            kwargs = _keywords_from_positional(cls.__name__, args, kwargs)
        missing = [n for n in required if n not in kwargs]
        if missing:
            raise TypeError(
                f"{cls.__name__} needs {' and '.join(missing)}: "
                f"{cls.__name__}(model=..., optimizer=..., ...)"
            )
        _refuse_unknown_keywords(cls, kwargs)
        init(self, **kwargs)

    for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(__init__, attribute, getattr(init, attribute))
    __init__.__signature__ = signature
    return __init__


def _check_template_arguments(model, optimizer, base_kwargs) -> None:
    """What Avalanche or torch would only trip over at ``train()``, refused before anything changes."""
    for name in ("train_mb_size", "train_epochs"):
        if name in base_kwargs:
            check_count(name, base_kwargs[name])
    if base_kwargs.get("eval_mb_size") is not None:
        check_count("eval_mb_size", base_kwargs["eval_mb_size"])
    check_device(base_kwargs.get("device"))
    if isinstance(model, nn.Module):
        tensors = list(model.parameters()) + list(model.buffers())
        if any(t.is_meta for t in tensors):
            raise ValueError(
                "the model has tensors on the meta device (shapes without data): load or "
                "materialise its weights (e.g. to_empty + load_state_dict) before training"
            )
        check_float32(model)
        check_optimizer_holds(model, optimizer)


def check_device(device) -> None:
    """A device this machine has: ``"cuda"`` without CUDA fails here, not 15 frames into ``train()``."""
    if device is None:
        return  # Avalanche uses the CPU, and says so
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ValueError(
            f"device={device!r} is not a torch device ({error}): give 'cpu', 'cuda' or 'cuda:<index>'"
        ) from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(
                f"device={device!r}, but CUDA is not available on this machine "
                "(torch.cuda.is_available() is False): give device='cpu', or "
                "device='cuda' if torch.cuda.is_available() else 'cpu'"
            )
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(
                f"device={device!r}, but this machine has {count} CUDA device(s): cuda:0 to cuda:{count - 1}"
            )
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r}, but MPS is not available on this machine: give device='cpu'")


def check_float32(model: nn.Module) -> None:
    """Floating tensors in float32: Avalanche's datasets give float32 inputs, and a float64 model
    fails deep in its first layer with a dtype mismatch."""
    named = list(model.named_parameters()) + list(model.named_buffers())
    other = next(((n, t) for n, t in named if t.is_floating_point() and t.dtype != torch.float32), None)
    if other is not None:
        name, tensor = other
        raise TypeError(
            f"the model's {name!r} is {tensor.dtype}, but the strategies train float32 models "
            "(Avalanche's datasets give float32 inputs; the adapters and the head follow the "
            "model): call model.float() before building the strategy. For bfloat16 or float16 "
            "compute, keep the model in float32 and add "
            "avalanche_litelora.training.plugins.autocast.AutocastPlugin"
        )


def check_optimizer_holds(model: nn.Module, optimizer) -> None:
    """An optimizer over another model's tensors (a copy, an earlier model) would step nothing
    the strategy trains, silently."""
    if not isinstance(optimizer, Optimizer):
        return  # Avalanche's own checks apply
    mine = {id(p) for p in model.parameters()}
    held = [p for group in optimizer.param_groups for p in group["params"]]
    if held and not any(id(p) in mine for p in held):
        raise ValueError(
            "the optimizer holds none of the model's parameters: it was built over another "
            "model's (a copy, or a model built before this one). Build it over the model given "
            "to the strategy: torch.optim.SGD(model.parameters(), lr=...)"
        )


def say_where_the_head_trains(optimizer, model) -> None:
    """With several parameter groups, say once which the head will join, and why (INFO).

    The head's tensors join the groups of :attr:`AdapterModel.replaced_classifier_ids`
    (see :mod:`avalanche_litelora.training.optimizer_groups`).
    """
    if not isinstance(optimizer, Optimizer) or len(optimizer.param_groups) < 2:
        return
    anchors = getattr(model, "replaced_classifier_ids", {})
    group_of = {id(p): g for g, group in enumerate(optimizer.param_groups) for p in group["params"]}
    joins = {name: group_of[i] for name, i in anchors.items() if i in group_of}
    if not joins:
        return  # the optimizer does not hold them: Avalanche's rule decides, or the error says why
    where = ", ".join(
        f"its {name} group {g} (lr={optimizer.param_groups[g].get('lr')})" for name, g in sorted(joins.items())
    )
    logger.info(
        "the new head joins the optimizer's groups of %s: %s", getattr(model, "head_group_anchor", "its anchors"), where
    )


class AdapterStrategy(
    HeadFromFirstExperienceMixin, CheckpointMixin, RankSafeTemplateMixin, StalledTrainingCheckMixin,
    SupervisedTemplate
):
    """Wires a plain backbone into :attr:`model_class` and appends the method's plugins.

    Its settings are one config (:attr:`config_class`), given as ``config=`` or as its
    fields' keywords; every other keyword goes to ``SupervisedTemplate``. Every check runs
    before the backbone changes. Positional arguments are read as Avalanche's ``Naive`` reads
    them (``model, optimizer, criterion, train_mb_size, ...``), with the same
    ``PositionalArgumentsDeprecatedWarning``. Unlike Avalanche's templates (1 and 1), it
    trains on minibatches of 64 and evaluates on 256 unless told otherwise
    (:data:`DEFAULT_MINIBATCH_SIZES` says why). ``save_checkpoint(path)`` / ``resume(path)`` come from
    :class:`~avalanche_litelora.training.checkpoint.CheckpointMixin`. An experience whose loss
    stays at chance gets one :class:`~avalanche_litelora.training.stalled_training.StalledTrainingWarning`.
    """

    #: The model a plain backbone is wired into.
    model_class: Type[AdapterModel]
    #: The settings this strategy takes.
    config_class: type
    #: What the method is called in messages.
    method_name = "adapter"
    #: Facts about the method, read by the benchmark harness instead of its name: a LoRA bank
    #: (adapter names, pruning, gate read-outs), one whose candidates are judged and may be
    #: pruned, and the scenarios it runs on (task identity at inference or not).
    is_bank = False
    has_candidates = False
    scenarios: Tuple[str, ...] = ("class_incremental", "task_incremental")

    def __init_subclass__(cls, **kwargs):
        """A subclass that inherits ``__init__`` inherits its calling conventions as they are.

        Avalanche wraps each template subclass's ``__init__`` to re-map positional arguments
        by its signature, where ``config`` comes third; ours maps them as ``Naive`` does.
        """
        inherits = "__init__" not in cls.__dict__
        super().__init_subclass__(**kwargs)
        if inherits and "__init__" in cls.__dict__:
            del cls.__init__

    @avalanche_calling_conventions
    def __init__(
        self,
        *,
        model: nn.Module,
        optimizer: Optimizer,
        criterion=None,
        config=None,
        plugins: Optional[Sequence[BasePlugin]] = None,
        **kwargs,
    ):
        self._check_model(model)
        config, base_kwargs = self.config_class.from_keywords(config, kwargs)
        refuse_foreign_settings(self.config_class, base_kwargs, type(self).__name__)
        base_kwargs = {**DEFAULT_MINIBATCH_SIZES, **base_kwargs}
        _check_template_arguments(model, optimizer, base_kwargs)
        #: The settings, validated (a ``dataclasses`` instance: ``asdict(strategy.config)``).
        self.config = config
        method_plugins = [AdapterGuardPlugin()] + self._method_plugins(config)
        check_lifecycle_order(method_plugins)
        user_plugins = list(plugins or [])
        # SupervisedTemplate rejects unknown keywords before the backbone is touched.
        super().__init__(
            model=model,
            optimizer=optimizer,
            criterion=criterion if criterion is not None else CrossEntropyLoss(),
            plugins=method_plugins + user_plugins + repairs_for(user_plugins),
            **base_kwargs,
        )
        refuse_unsupported_plugins(self.plugins)  # under torchrun; the backbone is untouched
        check_plugins(self.plugins, model, type(self).__name__, config)  # the backbone is still untouched
        if isinstance(model, self.model_class):
            self.model = model  # a ready model: its own rank, targets, head and gate apply
        else:
            self.model = self.model_class.build(model, **config.model_keywords())
        self._model_ready()
        say_where_the_head_trains(optimizer, self.model)

    def _check_model(self, model: nn.Module) -> None:
        """Refuse a model the method cannot start from, before anything changes (default: any)."""

    def _model_ready(self) -> None:
        """Adjust the built (or given) model to the method, before training starts (default: nothing)."""

    def _method_plugins(self, config) -> List[BasePlugin]:
        """The lifecycle plugins that make this strategy the method it is."""
        raise NotImplementedError

    # Read-outs: the numbers users watch, straight from the model.
    @property
    def adapter_model(self) -> AdapterModel:
        """The strategy's model, unwrapped from DDP."""
        return adapter_model_of(self, self.model_class, self.method_name)

    def adapter_parameter_count(self) -> int:
        return self.adapter_model.adapter_parameter_count()

    @property
    def lora_model(self) -> AdapterModel:
        """Deprecated name of :attr:`adapter_model` (it named a Share model too)."""
        return self._former_accessor("lora_model")

    def _former_accessor(self, name: str) -> AdapterModel:
        warnings.warn(f"{type(self).__name__}.{name} is deprecated: use .adapter_model",
                      DeprecationWarning, stacklevel=3)
        return self.adapter_model
