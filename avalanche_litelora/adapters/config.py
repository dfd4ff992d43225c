"""Every strategy's settings, with their defaults, in one place (peft-style configs).

A strategy takes ``config=`` or the same fields as keywords; either way the settings are
one of these dataclasses, checked in ``__post_init__`` before anything is built, with an
error naming the field. The benchmark harness's ``configs/methods.json`` holds values of
these same fields.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import MISSING, dataclass, fields
from typing import Any, Dict, Optional, Sequence, Tuple, Type, TypeVar, Union

from avalanche_litelora import checks
from avalanche_litelora.lora.gate import GATE_NOISES, GATE_SAMPLINGS, LAMBDA_RULES, check_init_logit
from avalanche_litelora.lora.inject import DEFAULT_TARGET_MODULES
from avalanche_litelora.models.phases import BOUNDARIES, MAGNITUDE_SCOPES
from avalanche_litelora.share.basis import validate_basis_choice
from avalanche_litelora.share.model import UNKNOWN_TASK_CHOICES

C = TypeVar("C", bound="_Checked")


class _Checked:
    """Field checks (:mod:`avalanche_litelora.checks`) with the config's name in every message."""

    #: The fields a strategy passes on to its model class (the rest configure plugins).
    model_fields: Tuple[str, ...] = ()

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
        if value is DEFAULT_TARGET_MODULES or isinstance(value, str):
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


@dataclass
class LoRABankConfig(_Checked):
    """What every adapter-bank strategy shares.

    :param rank: LoRA rank of every adapter.
    :param target_modules: Linear module names (dotted suffixes or globs); the default
        adapts timm's fused ``qkv`` on its q and v slices, else a transformers encoder's
        ``query`` / ``value``, else every Linear and 1x1 conv outside the classifier.
    :param init_logit: initial gate logit; must be > 0 (a closed gate never trains).
    :param tau: gate temperature.
    :param task_incremental: multi-head with Avalanche task labels instead of one growing
        head with cross-entropy on the current classes.
    :param feature_dim: for a backbone that already outputs features (default: measured by
        one forward pass on the first experience).
    :param merge_for_eval: evaluate with open adapters merged into the base weights.
    """

    model_fields = ("rank", "target_modules", "task_incremental", "feature_dim", "init_logit", "tau")

    rank: int = 10
    target_modules: Union[str, Sequence[str]] = DEFAULT_TARGET_MODULES
    init_logit: float = 0.5
    tau: float = 1.0
    task_incremental: bool = False
    feature_dim: Optional[int] = None
    merge_for_eval: bool = True

    def __post_init__(self):
        self._count("rank", 1)
        self._targets()
        check_init_logit(self._name("init_logit"), self.init_logit)
        self._real("tau", positive=True)
        self._flag("task_incremental")
        if self.feature_dim is not None:
            self._count("feature_dim", 1)
        self._flag("merge_for_eval")


@dataclass
class HeadOnlyConfig(LoRABankConfig):
    """The head-only control: the bank's model, head and loss, but no adapter is ever opened.

    ``rank`` and ``target_modules`` only say where the (always empty) adapter slots are; the
    backbone stays exactly the pretrained one, so the control measures what the head alone
    learns on frozen features with the same budget as the adapter methods.
    """


@dataclass
class SequentialLoRAConfig(LoRABankConfig):
    """One adapter fine-tuned through the whole stream."""


@dataclass
class PerTaskLoRAConfig(LoRABankConfig):
    """SD-LoRA: one adapter per experience, all kept.

    :param train_past_magnitudes: SD-LoRA's choice (True) trains earlier adapters'
        magnitudes with each new experience; False freezes them with their adapter.
    :param magnitude_scope: ``"per_layer"``: one SD-LoRA magnitude per layer and output
        slice (measured 1.2-2.6 points of anytime accuracy above the reference's, three
        seeds: BENCHMARKS.md); ``"per_adapter"``: one per adapter, shared by every layer and
        slice (the reference code's and SD-LoRA's).
    :param boundary: ``"rescale"``: a finished adapter is normalised keeping its magnitude
        and the first magnitude does not train in the first experience (the reference
        code's); ``"preserve"``: the norms are folded in, nothing changes at the boundary.
    """

    model_fields = LoRABankConfig.model_fields + ("magnitude_scope", "boundary")

    train_past_magnitudes: bool = True
    magnitude_scope: str = "per_layer"
    boundary: str = "rescale"

    def __post_init__(self):
        super().__post_init__()
        self._flag("train_past_magnitudes")
        self._choice("magnitude_scope", MAGNITUDE_SCOPES)
        self._choice("boundary", BOUNDARIES)


@dataclass
class TaskRoutedLoRAConfig(LoRABankConfig):
    """One adapter per task, each task's inputs through their own only."""

    task_incremental: bool = True
    merge_for_eval: bool = False  # no single merged weight serves every task

    def __post_init__(self):
        super().__post_init__()
        if self.task_incremental is not True:
            self._fail("task_incremental", "True: task routing needs task labels")


@dataclass
class LiteLoRAConfig(PerTaskLoRAConfig):
    """LiteLoRA: per-task LoRA whose candidate must earn its place in a selection phase.

    :param lambda_sparsity: weight of the L1 penalty on the candidate's gate. Under
        ``lambda_rule="relative"`` a fraction of the experience's own loss with the
        candidate closed: roughly, a candidate is kept when it removes more than this share
        of that loss. Under ``"absolute"`` in nats per sample (the reference code's).
    :param lambda_rule: ``"relative"`` or ``"absolute"`` (see ``lambda_sparsity``).
    :param selection_epochs: passes over the experience's minibatches in the selection phase.
    :param min_selection_steps: the phase makes at least this many logit updates, cycling
        the data, so a small experience reaches a decision as a large one does.
    :param selection_lr: AdamW learning rate of the gate logit.
    :param selection_mb_size: the strategy's minibatches are cut into chunks of this size
        during selection (default: uncut).
    :param gate_noise: ``"gumbel"`` (the reference code's, biased towards open) or
        ``"logistic"`` (the binary-concrete relaxation, symmetric).
    :param gate_sampling: ``"per_call"``: a fresh gate sample at every gated layer call, the
        L1 term their mean (the reference code's); ``"per_forward"``: one per forward pass.
    :param refit_steps: head refit minibatches after a pruning (0 disables).
    :param refit_lr: SGD learning rate of that refit.
    """

    lambda_sparsity: float = 0.4
    lambda_rule: str = "relative"
    selection_epochs: int = 1
    min_selection_steps: int = 100
    selection_lr: float = 0.05
    selection_mb_size: Optional[int] = None
    gate_noise: str = "gumbel"
    gate_sampling: str = "per_call"
    refit_steps: int = 50
    refit_lr: float = 0.01

    def __post_init__(self):
        super().__post_init__()
        self._real("lambda_sparsity", at_least_zero=True)
        self._count("selection_epochs", 0)
        self._count("min_selection_steps", 0)
        if self.selection_epochs == 0 and self.min_selection_steps == 0:
            raise ValueError(
                "LiteLoRAConfig.selection_epochs and min_selection_steps are both 0: the gate "
                "would never train"
            )
        self._real("selection_lr", positive=True)
        if self.selection_mb_size is not None:
            self._count("selection_mb_size", 1)
        self._choice("gate_noise", GATE_NOISES)
        self._choice("gate_sampling", GATE_SAMPLINGS)
        self._choice("lambda_rule", LAMBDA_RULES)
        self._count("refit_steps", 0)
        self._real("refit_lr", positive=True)


@dataclass
class ShareConfig(_Checked):
    """Share: one shared low-rank subspace per layer, tiny per-task coefficients.

    :param rank: rank of the first adapter; also the rank of the per-task-LoRA equivalent.
    :param pseudo_rank: p, width of each later task's coefficients.
    :param temporary_vectors: phi, extra basis vectors trained with each later task.
    :param explained_variance: energy threshold for k (default 0.6 when ``k`` is None).
    :param k: fixed basis size instead of a threshold.
    :param target_modules: as for :class:`LoRABankConfig`.
    :param feature_dim: as for :class:`LoRABankConfig`.
    :param unknown_task: ``"backbone"`` (a task without coefficients runs through the bare
        backbone, as evaluation of future experiences needs) or ``"error"``.
    """

    model_fields = ("rank", "target_modules", "feature_dim", "unknown_task")

    rank: int = 10
    pseudo_rank: int = 1
    temporary_vectors: int = 2
    explained_variance: Optional[float] = None
    k: Optional[int] = None
    target_modules: Union[str, Sequence[str]] = DEFAULT_TARGET_MODULES
    feature_dim: Optional[int] = None
    unknown_task: str = "backbone"

    def __post_init__(self):
        self._count("rank", 1)
        self._count("pseudo_rank", 1)
        self._count("temporary_vectors", 1)
        validate_basis_choice(self.explained_variance, self.k)
        self._targets()
        if self.feature_dim is not None:
            self._count("feature_dim", 1)
        self._choice("unknown_task", UNKNOWN_TASK_CHOICES)


#: Every config that adds fields, and whose settings those are (for messages).
_OWNERS = {LoRABankConfig: "LoRA-bank", PerTaskLoRAConfig: "per-task LoRA and LiteLoRA",
           LiteLoRAConfig: "LiteLoRA", ShareConfig: "Share"}
ALL_CONFIGS = tuple(_OWNERS)


def refuse_foreign_settings(config_class: type, keywords: Dict[str, Any], strategy: str) -> None:
    """A keyword that is another method's setting names that method, not a typo."""
    own = {f.name for f in fields(config_class)}
    for other in ALL_CONFIGS:
        foreign = sorted(set(keywords) & ({f.name for f in fields(other)} - own))
        if foreign:
            raise TypeError(
                f"{foreign} are {_OWNERS[other]} settings, not settings of {strategy} "
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
