"""Thin Avalanche strategies: a ``SupervisedTemplate`` plus the adapter-bank plugins.

All three share one model class and one set of plugins, so LiteLoRA, per-task LoRA
(SD-LoRA) and sequential LoRA differ only in which lifecycle plugins they append.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence

from avalanche.core import BasePlugin
from avalanche.training.templates import SupervisedTemplate
from torch import nn
from torch.nn import CrossEntropyLoss
from torch.optim import Optimizer

from avalanche_litelora.config import (
    LiteLoRAConfig,
    LoRABankConfig,
    PerTaskLoRAConfig,
    SequentialLoRAConfig,
    TaskRoutedLoRAConfig,
    accepts_config_keywords,
)
from avalanche_litelora.models.lora_classifier import LoRAClassifier
from avalanche_litelora.models.task_routed import TaskRoutedLoRAClassifier
from avalanche_litelora.training.checkpoint import CheckpointMixin
from avalanche_litelora.training.compatibility import check_plugins
from avalanche_litelora.training.distributed import RankSafeTemplateMixin, refuse_unsupported_plugins
from avalanche_litelora.training.first_experience import HeadFromFirstExperienceMixin
from avalanche_litelora.training.plugins import (
    AdapterGuardPlugin,
    CurrentClassesLossPlugin,
    FreezeBankPlugin,
    GateSelectionPlugin,
    MergedEvalPlugin,
    OpenCandidatePlugin,
    PruneClosedCandidatePlugin,
)
from avalanche_litelora.training.plugins._access import lora_model
from avalanche_litelora.training.plugins.task_routing import OpenTaskAdapterPlugin
from avalanche_litelora.training.plugins.selection import check_gate_can_decide


def _is_count(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _check_template_arguments(model, base_kwargs) -> None:
    """What Avalanche would only trip over at ``train()``, refused before anything changes."""
    for name in ("train_mb_size", "train_epochs"):
        if name in base_kwargs and not _is_count(base_kwargs[name], 1):
            raise ValueError(f"{name} must be a positive integer, got {base_kwargs[name]!r}")
    eval_mb = base_kwargs.get("eval_mb_size")
    if eval_mb is not None and not _is_count(eval_mb, 1):
        raise ValueError(f"eval_mb_size must be a positive integer or None, got {eval_mb!r}")
    if isinstance(model, nn.Module):
        tensors = list(model.parameters()) + list(model.buffers())
        if any(t.is_meta for t in tensors):
            raise ValueError(
                "the model has tensors on the meta device (shapes without data): load or "
                "materialise its weights (e.g. to_empty + load_state_dict) before training"
            )


@accepts_config_keywords(config_class=LiteLoRAConfig)  # every bank setting passes Avalanche's check
class _LoRABankStrategy(
    HeadFromFirstExperienceMixin, CheckpointMixin, RankSafeTemplateMixin, SupervisedTemplate
):
    """Wires a plain backbone into a :class:`LoRAClassifier` and appends bank plugins.

    Its settings are one config (:attr:`config_class`), given as ``config=`` or as its
    fields' keywords; every other keyword goes to ``SupervisedTemplate``.
    ``save_checkpoint(path)`` / ``resume(path)`` come from :class:`CheckpointMixin`.
    """

    #: The model a plain backbone is wired into.
    model_class = LoRAClassifier
    #: The settings this strategy takes.
    config_class = LoRABankConfig

    def __init__(
        self,
        *,
        model: nn.Module,
        optimizer: Optimizer,
        config: Optional[LoRABankConfig] = None,
        criterion=None,
        plugins: Optional[Sequence[BasePlugin]] = None,
        **kwargs,
    ):
        config, base_kwargs = self.config_class.from_keywords(config, kwargs)
        foreign = sorted(set(base_kwargs) & {f.name for f in dataclasses.fields(LiteLoRAConfig)})
        if foreign:
            raise TypeError(
                f"{foreign} are LiteLoRA settings, not settings of {type(self).__name__} "
                f"(its settings: {self.config_class.__name__})"
            )
        _check_template_arguments(model, base_kwargs)
        #: The settings, validated (a ``dataclasses`` instance: ``asdict(strategy.config)``).
        self.config = config
        bank_plugins = self._bank_plugins(config)
        if not config.task_incremental:
            bank_plugins = bank_plugins + [CurrentClassesLossPlugin()]
        if config.merge_for_eval:
            bank_plugins = bank_plugins + [MergedEvalPlugin()]
        all_plugins = [AdapterGuardPlugin()] + bank_plugins + list(plugins or [])
        # SupervisedTemplate rejects unknown keywords before the backbone is touched.
        super().__init__(
            model=model,
            optimizer=optimizer,
            criterion=criterion if criterion is not None else CrossEntropyLoss(),
            plugins=all_plugins,
            **base_kwargs,
        )
        refuse_unsupported_plugins(self.plugins)  # under torchrun; the backbone is untouched
        check_plugins(self.plugins, model, type(self).__name__)  # the backbone is still untouched
        if isinstance(model, self.model_class):
            self.model = model
        else:
            self.model = self.model_class(
                model,
                rank=config.rank,
                target_modules=config.target_modules,
                task_incremental=config.task_incremental,
                feature_dim=config.feature_dim,
                init_logit=config.init_logit,
                tau=config.tau,
            )

    def _bank_plugins(self, config) -> List[BasePlugin]:
        """The lifecycle plugins that make this strategy the method it is."""
        raise NotImplementedError

    # Read-outs: the numbers users watch, straight from the bank.
    @property
    def lora_model(self) -> LoRAClassifier:
        return lora_model(self)

    @property
    def active_adapters(self) -> List[str]:
        return self.lora_model.active_adapters

    @property
    def pruned_adapters(self) -> List[str]:
        return list(self.lora_model.pruned_adapters)

    def adapter_parameter_count(self) -> int:
        return self.lora_model.adapter_parameter_count()

    def gate_logits(self):
        return self.lora_model.gate_logits()

    def magnitudes(self):
        return self.lora_model.magnitudes()


@accepts_config_keywords
class LiteLoRAStrategy(_LoRABankStrategy):
    """LiteLoRA: one gated candidate adapter per experience, kept only if it earns its place.

    Each experience trains the candidate, all magnitudes and the head for ``train_epochs``
    epochs (Avalanche's meaning), then, as an extra phase, only the candidate's gate logit
    under cross-entropy + ``lambda_sparsity`` * L1(gate) for at least ``min_selection_steps``
    steps. A candidate whose gate closes is pruned and the head is refit on the reused bank.

    :param model: a plain backbone (wired here), or a ready :class:`LoRAClassifier`, whose
        own rank, targets, head and gate settings then apply.
    :param optimizer: for the backbone's parameters; the bank's join its groups.
    :param config: a :class:`~avalanche_litelora.config.LiteLoRAConfig`, or its fields as
        keywords (``rank``, ``lambda_sparsity``, ``min_selection_steps``, ...).
    Every other keyword goes to ``SupervisedTemplate``.
    """

    config_class = LiteLoRAConfig

    def _bank_plugins(self, config: LiteLoRAConfig) -> List[BasePlugin]:
        selection = GateSelectionPlugin(
            lambda_sparsity=config.lambda_sparsity,
            selection_epochs=config.selection_epochs,
            selection_lr=config.selection_lr,
            selection_mb_size=config.selection_mb_size,
            min_selection_steps=config.min_selection_steps,
            gate_noise=config.gate_noise,
        )
        check_gate_can_decide(config.init_logit, selection)
        return [
            OpenCandidatePlugin(train_past_magnitudes=config.train_past_magnitudes),
            selection,
            PruneClosedCandidatePlugin(refit_steps=config.refit_steps, refit_lr=config.refit_lr),
            FreezeBankPlugin(),
        ]


@accepts_config_keywords
class PerTaskLoRAStrategy(_LoRABankStrategy):
    """SD-LoRA behaviour: one adapter per experience, every adapter kept, no selection.

    Every adapter of the bank acts on every input (a sum), as in SD-LoRA and LiteLoRA; for
    one adapter per task and nothing else, see :class:`TaskRoutedLoRAStrategy`. Settings:
    :class:`~avalanche_litelora.config.PerTaskLoRAConfig`.
    """

    config_class = PerTaskLoRAConfig

    def _bank_plugins(self, config: PerTaskLoRAConfig) -> List[BasePlugin]:
        return [OpenCandidatePlugin(train_past_magnitudes=config.train_past_magnitudes), FreezeBankPlugin()]


@accepts_config_keywords
class SequentialLoRAStrategy(_LoRABankStrategy):
    """One adapter fine-tuned through the whole stream (the forgetting-prone baseline)."""

    config_class = SequentialLoRAConfig

    def _bank_plugins(self, config: SequentialLoRAConfig) -> List[BasePlugin]:
        return [OpenCandidatePlugin(single_adapter=True)]


@accepts_config_keywords
class TaskRoutedLoRAStrategy(_LoRABankStrategy):
    """One adapter per task, and each task's inputs see only their own (task-incremental).

    The zero-forgetting reference for :class:`PerTaskLoRAStrategy`, whose summed bank lets
    every new adapter act on earlier tasks. Needs Avalanche task labels at train and test time.
    Settings: :class:`~avalanche_litelora.config.TaskRoutedLoRAConfig`.
    """

    model_class = TaskRoutedLoRAClassifier
    config_class = TaskRoutedLoRAConfig

    def _bank_plugins(self, config: TaskRoutedLoRAConfig) -> List[BasePlugin]:
        return [OpenTaskAdapterPlugin(), FreezeBankPlugin()]
