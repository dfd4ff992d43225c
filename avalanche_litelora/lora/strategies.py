"""The adapter-bank strategies: LiteLoRA, per-task LoRA (SD-LoRA), sequential and task-routed LoRA.

They share one model class and one set of plugins, and differ only in the config they take
and the lifecycle plugins they append (:meth:`LoRABankStrategy._bank_plugins`).
"""

from __future__ import annotations

from typing import Dict, List

from avalanche.core import BasePlugin

from avalanche_litelora.adapters.config import accepts_config_keywords
from avalanche_litelora.lora import plugins as lora_plugins
from avalanche_litelora.lora.config import (
    HeadOnlyConfig,
    LiteLoRAConfig,
    LoRABankConfig,
    PerTaskLoRAConfig,
    SequentialLoRAConfig,
    TaskRoutedLoRAConfig,
)
from avalanche_litelora.lora.model import LoRAClassifier
from avalanche_litelora.lora.plugins.selection import warn_if_gate_cannot_decide
from avalanche_litelora.lora.task_routed import TaskRoutedLoRAClassifier
from avalanche_litelora.training.adapter_strategy import AdapterStrategy
from avalanche_litelora.training.plugins.current_classes import CurrentClassesLossPlugin
from avalanche_litelora.registry import register


class LoRABankStrategy(AdapterStrategy):
    """A :class:`~avalanche_litelora.training.adapter_strategy.AdapterStrategy` over a
    :class:`LoRAClassifier`: the method's bank plugins, then the class-incremental loss and
    the merged evaluation its config asks for.
    """

    model_class = LoRAClassifier
    config_class = LoRABankConfig
    method_name = "LiteLoRA"
    is_bank = True

    def _method_plugins(self, config: LoRABankConfig) -> List[BasePlugin]:
        plugins = self._bank_plugins(config)
        if not config.task_incremental:
            plugins.append(CurrentClassesLossPlugin())
        if config.merge_for_eval:
            plugins.append(lora_plugins.MergedEvalPlugin())
        return plugins

    def _bank_plugins(self, config) -> List[BasePlugin]:
        """The lifecycle plugins that tell one bank method from another."""
        raise NotImplementedError

    # Read-outs: the numbers users watch, straight from the bank.
    @property
    def active_adapters(self) -> List[str]:
        return self.adapter_model.active_adapters

    @property
    def pruned_adapters(self) -> List[str]:
        return list(self.adapter_model.pruned_adapters)

    def gate_logits(self, include_pruned: bool = False) -> Dict[str, float]:
        """Each adapter's gate logit; with ``include_pruned``, also each pruned candidate's
        last logit (the one it was pruned with), so every decision stays readable."""
        logits = self.adapter_model.gate_logits()
        if include_pruned:
            for plugin in self.plugins:
                if isinstance(plugin, lora_plugins.PruneClosedCandidatePlugin):
                    logits.update(plugin.pruned_logits)
            logits = dict(sorted(logits.items(), key=lambda item: _adapter_index(item[0])))
        return logits

    def magnitudes(self):
        return self.adapter_model.magnitudes()


def _adapter_index(name: str) -> int:
    tail = name.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else -1


@register
@accepts_config_keywords
class LiteLoRAStrategy(LoRABankStrategy):
    """LiteLoRA: one gated candidate adapter per experience, kept only if it earns its place.

    Each experience trains the candidate, all magnitudes and the head for ``train_epochs``
    epochs (Avalanche's meaning), then, as an extra phase, only the candidate's gate logit
    under cross-entropy + ``lambda_sparsity`` * L1(gate) for at least ``min_selection_steps``
    steps. A candidate whose gate closes is pruned and the head is refit on the reused bank.

    :param model: a plain backbone (wired here), or a ready :class:`LoRAClassifier`, whose
        own rank, targets, head and gate settings then apply.
    :param optimizer: for the backbone's parameters; the bank's join its groups.
    :param config: a :class:`~avalanche_litelora.lora.config.LiteLoRAConfig`, or its fields as
        keywords (``rank``, ``lambda_sparsity``, ``min_selection_steps``, ...).
    Every other keyword goes to ``SupervisedTemplate``.
    """

    config_class = LiteLoRAConfig
    has_candidates = True

    @property
    def candidate_decisions(self) -> List[dict]:
        """Every judged candidate: its training loss with the gate closed and open, their
        difference (``benefit_nats``), the lambda it was weighed against, and whether it was
        kept. Read it to see why the gate decided as it did on your stream."""
        selection = next(p for p in self.plugins if isinstance(p, lora_plugins.GateSelectionPlugin))
        return selection.watch.state()

    def _bank_plugins(self, config: LiteLoRAConfig) -> List[BasePlugin]:
        selection = lora_plugins.GateSelectionPlugin(
            lambda_sparsity=config.lambda_sparsity,
            selection_epochs=config.selection_epochs,
            selection_lr=config.selection_lr,
            selection_mb_size=config.selection_mb_size,
            min_selection_steps=config.min_selection_steps,
            gate_noise=config.gate_noise,
            gate_sampling=config.gate_sampling,
            lambda_rule=config.lambda_rule,
        )
        warn_if_gate_cannot_decide(config.init_logit, selection)
        return [
            lora_plugins.OpenCandidatePlugin(train_past_magnitudes=config.train_past_magnitudes),
            selection,
            lora_plugins.PruneClosedCandidatePlugin(refit_steps=config.refit_steps, refit_lr=config.refit_lr),
            lora_plugins.FreezeBankPlugin(),
        ]


@register
@accepts_config_keywords
class PerTaskLoRAStrategy(LoRABankStrategy):
    """SD-LoRA behaviour: one adapter per experience, every adapter kept, no selection.

    Every adapter of the bank acts on every input (a sum), as in SD-LoRA and LiteLoRA; for
    one adapter per task and nothing else, see :class:`TaskRoutedLoRAStrategy`. Settings:
    :class:`~avalanche_litelora.lora.config.PerTaskLoRAConfig`.
    """

    config_class = PerTaskLoRAConfig

    def _bank_plugins(self, config: PerTaskLoRAConfig) -> List[BasePlugin]:
        return [lora_plugins.OpenCandidatePlugin(train_past_magnitudes=config.train_past_magnitudes),
                lora_plugins.FreezeBankPlugin()]


@register
@accepts_config_keywords
class HeadOnlyStrategy(LoRABankStrategy):
    """The control every adapter table needs: a frozen backbone and the same head, loss and
    budget as the bank strategies, with no adapter at all.

    A stream where this matches :class:`PerTaskLoRAStrategy` cannot test an adapter method:
    the head alone learns it, and any gate decision there is noise. Settings:
    :class:`~avalanche_litelora.lora.config.HeadOnlyConfig`.
    """

    config_class = HeadOnlyConfig

    def _bank_plugins(self, config: HeadOnlyConfig) -> List[BasePlugin]:
        return [lora_plugins.FreezeBankPlugin()]  # no candidate: it only hands the head back to train


@register
@accepts_config_keywords
class SequentialLoRAStrategy(LoRABankStrategy):
    """One adapter fine-tuned through the whole stream (the forgetting-prone baseline)."""

    config_class = SequentialLoRAConfig

    def _bank_plugins(self, config: SequentialLoRAConfig) -> List[BasePlugin]:
        return [lora_plugins.OpenCandidatePlugin(single_adapter=True)]


@register
@accepts_config_keywords
class TaskRoutedLoRAStrategy(LoRABankStrategy):
    """One adapter per task, and each task's inputs see only their own (task-incremental).

    The zero-forgetting reference for :class:`PerTaskLoRAStrategy`, whose summed bank lets
    every new adapter act on earlier tasks. Needs Avalanche task labels at train and test time.
    Settings: :class:`~avalanche_litelora.lora.config.TaskRoutedLoRAConfig`.
    """

    model_class = TaskRoutedLoRAClassifier
    config_class = TaskRoutedLoRAConfig
    scenarios = ("task_incremental",)

    def _bank_plugins(self, config: TaskRoutedLoRAConfig) -> List[BasePlugin]:
        return [lora_plugins.OpenTaskAdapterPlugin(), lora_plugins.FreezeBankPlugin()]
