"""Refuse what would corrupt the adapters; keep evaluation from changing training.

One guard serves every adapter strategy (the LoRA bank and Share). A head too small, an
empty experience, a stream the model cannot follow (an online stream without experience
boundaries, a task-incremental model without task labels) are refused before the
adapters change; a non-finite loss restores them. Evaluation draws random numbers
(every data loader does), so the global generators are put back after it: a run's
weights must not depend on whether, or how often, it evaluated.
"""

from __future__ import annotations

from typing import List, Optional

import torch
from avalanche.benchmarks import OnlineCLExperience
from avalanche.core import SupervisedPlugin
from avalanche.models import MultiTaskModule

from avalanche_litelora.adapters.model import AdapterModel
from avalanche_litelora.adapters.heads import head_capacity
from avalanche_litelora.training.checkpoint import capture_rng_state, restore_rng_state
from avalanche_litelora.training.distributed import any_rank, make_optimizer, drop_ddp_wrapper
from avalanche_litelora.adapters.access import adapter_model_of
from avalanche_litelora.training import protocol
from avalanche_litelora.training.plugins.current_classes import experience_classes
from avalanche_litelora.registry import register
from avalanche_litelora.former_names import getattr_for as _getattr_for


def check_stream_fits(experience, model, method: str) -> None:
    """Refuse, with the reason, an experience whose stream the model cannot follow."""
    if isinstance(experience, OnlineCLExperience) and not experience.access_task_boundaries:
        raise ValueError(
            f"{method} opens one adapter per experience and needs to know where experiences "
            "end: build the online stream with split_online_stream(..., "
            "access_task_boundaries=True)"
        )
    if isinstance(model, MultiTaskModule) and not list(getattr(experience, "task_labels", [])):
        raise ValueError(
            f"a task-incremental model needs task labels, and experience "
            f"{getattr(experience, 'current_experience', '?')} has none (Avalanche's "
            "class_incremental_benchmark streams carry none): use task_incremental=False, or a "
            "benchmark with task labels"
        )


class EvalLeavesTrainingAlone:
    """Mixin for a plugin: the global RNG state after an evaluation is the one before it."""

    def before_eval(self, strategy, **kwargs):
        self._rng_before_eval: List[dict] = getattr(self, "_rng_before_eval", [])
        self._rng_before_eval.append(capture_rng_state())

    def after_eval(self, strategy, **kwargs):
        if getattr(self, "_rng_before_eval", None):
            restore_rng_state(self._rng_before_eval.pop())


@register
class AdapterGuardPlugin(EvalLeavesTrainingAlone, SupervisedPlugin, supports_distributed=True):
    """Checks each experience before the adapters change and restores them on a non-finite loss.

    The one guard of every adapter model (LoRA bank, Share): what it snapshots is the
    model's :meth:`~avalanche_litelora.adapters.model.AdapterModel.learned_state`.
    Put it first in the plugin list: it snapshots before the experience's adapter opens.
    Under torchrun a non-finite loss on any rank stops every rank at the same step.
    """

    lifecycle_step = "guard"

    def __init__(self):
        super().__init__()
        self._snapshot: Optional[dict] = None

    def _take_snapshot(self, strategy) -> None:
        if self._snapshot is None:
            self._snapshot = adapter_model_of(strategy).learned_state()

    def before_training(self, strategy, **kwargs):
        self._take_snapshot(strategy)

    def before_train_dataset_adaptation(self, strategy, **kwargs):
        """An empty experience would open an adapter that nothing trains: refuse it first."""
        self._take_snapshot(strategy)
        experience = strategy.experience
        try:
            check_stream_fits(experience, adapter_model_of(strategy), type(adapter_model_of(strategy)).__name__)
            if len(experience.dataset) == 0:
                raise ValueError(
                    f"experience {experience.current_experience} has no training "
                    "samples: there is nothing to train its adapter on; leave it out of the stream"
                )
        except ValueError:
            self._restore(strategy)
            raise

    def before_training_exp(self, strategy, **kwargs):
        model = adapter_model_of(strategy)
        classes = experience_classes(strategy.experience)
        capacity = head_capacity(model.head)
        if capacity is not None and classes and max(classes) >= capacity:
            self._restore(strategy)
            raise ValueError(
                f"experience {strategy.experience.current_experience} has class "
                f"{max(classes)} but the head holds only {capacity} classes"
            )

    def before_update(self, strategy, **kwargs):
        """After every plugin has shaped the loss and before any weight moves."""
        loss = strategy.loss
        if not any_rank(not bool(torch.isfinite(loss).all())):  # every rank stops together
            return
        exp = strategy.experience.current_experience
        iteration = strategy.clock.train_exp_iterations
        what = adapter_model_of(strategy).learned_state_name
        self._restore(strategy)
        raise FloatingPointError(
            f"non-finite loss ({float(loss.detach()) if loss.numel() == 1 else 'tensor'}) "
            f"at experience {exp}, iteration {iteration}: training stopped and the {what} "
            "was restored to its state before this experience"
        )

    def _restore(self, strategy) -> None:
        model = adapter_model_of(strategy)
        for plugin in strategy.plugins:  # e.g. the selection phase hands back the optimizer
            if plugin is not self:
                protocol.abort_experience(plugin, strategy)
        if self._snapshot is None:
            return
        model.load_state_dict(self._snapshot, strict=False)
        drop_ddp_wrapper(strategy)  # a DDP wrapper would hold the tensors just replaced
        make_optimizer(strategy, remove_params=True, reset_optimizer_state=True)
        self._snapshot = None

    def after_training_exp(self, strategy, **kwargs):
        self._snapshot = None


__getattr__ = _getattr_for(__name__)  # names this module had in 0.1.0, deprecated
