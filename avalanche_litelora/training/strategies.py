"""Thin Avalanche strategies: a ``SupervisedTemplate`` plus the adapter-bank plugins.

All three share one model class and one set of plugins, so LiteLoRA, per-task LoRA
(SD-LoRA) and sequential LoRA differ only in which lifecycle plugins they append.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from avalanche.core import BasePlugin
from avalanche.training.templates import SupervisedTemplate
from torch import nn
from torch.nn import CrossEntropyLoss
from torch.optim import Optimizer

from avalanche_litelora.lora.inject import DEFAULT_TARGET_MODULES
from avalanche_litelora.models.lora_classifier import LoRAClassifier
from avalanche_litelora.models.task_routed import TaskRoutedLoRAClassifier
from avalanche_litelora.training.checkpoint import CheckpointMixin
from avalanche_litelora.training.compatibility import check_plugins
from avalanche_litelora.training.distributed import RankSafeTemplateMixin, refuse_unsupported_plugins
from avalanche_litelora.training.first_experience import HeadFromFirstExperienceMixin
from avalanche_litelora.training.plugins import (
    BankGuardPlugin,
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


def _check_template_arguments(model, task_incremental, merge_for_eval, base_kwargs) -> None:
    """What Avalanche would only trip over at ``train()``, refused before anything changes."""
    for name, value in (("task_incremental", task_incremental), ("merge_for_eval", merge_for_eval)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")
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


class _LoRABankStrategy(
    HeadFromFirstExperienceMixin, CheckpointMixin, RankSafeTemplateMixin, SupervisedTemplate
):
    """Wires a plain backbone into a :class:`LoRAClassifier` and appends bank plugins.

    ``save_checkpoint(path)`` / ``resume(path)`` come from :class:`CheckpointMixin`.
    """

    #: The model a plain backbone is wired into.
    model_class = LoRAClassifier

    def __init__(
        self,
        *,
        model: nn.Module,
        optimizer: Optimizer,
        bank_plugins: List[BasePlugin],
        criterion=None,
        rank: int = 10,
        target_modules: Sequence[str] = DEFAULT_TARGET_MODULES,
        init_logit: float = 0.5,
        tau: float = 1.0,
        task_incremental: bool = False,
        feature_dim: Optional[int] = None,
        merge_for_eval: bool = True,
        plugins: Optional[Sequence[BasePlugin]] = None,
        **base_kwargs,
    ):
        _check_template_arguments(model, task_incremental, merge_for_eval, base_kwargs)
        if not task_incremental:
            bank_plugins = bank_plugins + [CurrentClassesLossPlugin()]
        if merge_for_eval:
            bank_plugins = bank_plugins + [MergedEvalPlugin()]
        all_plugins = [BankGuardPlugin()] + bank_plugins + list(plugins or [])
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
                rank=rank,
                target_modules=target_modules,
                task_incremental=task_incremental,
                feature_dim=feature_dim,
                init_logit=init_logit,
                tau=tau,
            )

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


class LiteLoRAStrategy(_LoRABankStrategy):
    """LiteLoRA: one gated candidate adapter per experience, kept only if it earns its place.

    Each experience trains the candidate, all magnitudes and the head for ``train_epochs``
    epochs (Avalanche's meaning), then, as an extra phase, only the candidate's gate logit
    under cross-entropy + ``lambda_sparsity`` * L1(gate) for at least ``min_selection_steps``
    steps. A candidate whose gate closes is pruned and the head is refit on the reused bank.

    :param model: a plain backbone (wired here), or a ready :class:`LoRAClassifier`, whose
        own rank, targets, head and gate settings then apply.
    :param rank: LoRA rank of every adapter.
    :param target_modules: Linear module names (dotted suffixes or globs) to adapt;
        timm's fused ``qkv`` is adapted on its q and v slices.
    :param lambda_sparsity: weight of the L1 penalty on the candidate's gate, in nats of
        cross-entropy per sample: roughly, a candidate is kept when it lowers the mean loss
        of the experience by more than this (see the README for the scale).
    :param selection_epochs: passes over the experience's minibatches in the selection phase.
    :param min_selection_steps: the phase makes at least this many logit updates, cycling
        the data, so a small experience reaches a decision as a large one does.
    :param selection_lr: AdamW learning rate of the gate logit.
    :param selection_mb_size: the strategy's minibatches are cut into chunks of this size
        during selection (default: uncut).
    :param gate_noise: ``"gumbel"`` (the reference code's, biased towards open) or
        ``"logistic"`` (the binary-concrete relaxation, symmetric).
    :param init_logit: initial gate logit (> 0: the gate starts open).
    :param tau: gate temperature.
    :param train_past_magnitudes: SD-LoRA's choice (True) trains earlier adapters'
        magnitudes with each new experience; False freezes them with their adapter.
    :param refit_steps: head refit minibatches after a pruning (0 disables).
    :param refit_lr: SGD learning rate of that refit.
    :param task_incremental: multi-head with Avalanche task labels instead of one
        growing head with cross-entropy on the current classes.
    :param feature_dim: for a backbone that already outputs features (default: measured
        by one forward pass on the first experience).
    :param merge_for_eval: evaluate with open adapters merged into the base weights.
    Every other keyword goes to ``SupervisedTemplate``.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        optimizer: Optimizer,
        criterion=None,
        rank: int = 10,
        target_modules: Sequence[str] = DEFAULT_TARGET_MODULES,
        lambda_sparsity: float = 0.03,
        selection_epochs: int = 1,
        min_selection_steps: int = 100,
        selection_lr: float = 0.05,
        selection_mb_size: Optional[int] = None,
        gate_noise: str = "gumbel",
        init_logit: float = 0.5,
        tau: float = 1.0,
        train_past_magnitudes: bool = True,
        refit_steps: int = 50,
        refit_lr: float = 0.01,
        task_incremental: bool = False,
        feature_dim: Optional[int] = None,
        **base_kwargs,
    ):
        selection = GateSelectionPlugin(
            lambda_sparsity=lambda_sparsity,
            selection_epochs=selection_epochs,
            selection_lr=selection_lr,
            selection_mb_size=selection_mb_size,
            min_selection_steps=min_selection_steps,
            gate_noise=gate_noise,
        )
        check_gate_can_decide(init_logit, selection)
        prune = PruneClosedCandidatePlugin(refit_steps=refit_steps, refit_lr=refit_lr)
        super().__init__(
            model=model,
            optimizer=optimizer,
            criterion=criterion,
            bank_plugins=[
                OpenCandidatePlugin(train_past_magnitudes=train_past_magnitudes),
                selection,
                prune,
                FreezeBankPlugin(),
            ],
            rank=rank,
            target_modules=target_modules,
            init_logit=init_logit,
            tau=tau,
            task_incremental=task_incremental,
            feature_dim=feature_dim,
            **base_kwargs,
        )


class PerTaskLoRAStrategy(_LoRABankStrategy):
    """SD-LoRA behaviour: one adapter per experience, every adapter kept, no selection.

    Every adapter of the bank acts on every input (a sum), as in SD-LoRA and LiteLoRA; for
    one adapter per task and nothing else, see :class:`TaskRoutedLoRAStrategy`.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        optimizer: Optimizer,
        train_past_magnitudes: bool = True,
        **kwargs,
    ):
        super().__init__(
            model=model,
            optimizer=optimizer,
            bank_plugins=[
                OpenCandidatePlugin(train_past_magnitudes=train_past_magnitudes),
                FreezeBankPlugin(),
            ],
            **kwargs,
        )


class SequentialLoRAStrategy(_LoRABankStrategy):
    """One adapter fine-tuned through the whole stream (the forgetting-prone baseline)."""

    def __init__(self, *, model: nn.Module, optimizer: Optimizer, **kwargs):
        super().__init__(
            model=model,
            optimizer=optimizer,
            bank_plugins=[OpenCandidatePlugin(single_adapter=True)],
            **kwargs,
        )


class TaskRoutedLoRAStrategy(_LoRABankStrategy):
    """One adapter per task, and each task's inputs see only their own (task-incremental).

    The zero-forgetting reference for :class:`PerTaskLoRAStrategy`, whose summed bank lets
    every new adapter act on earlier tasks. Needs Avalanche task labels at train and test time.
    """

    model_class = TaskRoutedLoRAClassifier

    def __init__(self, *, model: nn.Module, optimizer: Optimizer, **kwargs):
        if kwargs.pop("task_incremental", True) is not True:
            raise ValueError("TaskRoutedLoRAStrategy routes by task label: task_incremental must be True")
        kwargs.setdefault("merge_for_eval", False)  # no single merged weight serves every task
        super().__init__(
            model=model,
            optimizer=optimizer,
            bank_plugins=[OpenTaskAdapterPlugin(), FreezeBankPlugin()],
            task_incremental=True,
            **kwargs,
        )
