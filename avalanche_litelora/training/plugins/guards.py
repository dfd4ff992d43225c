"""Refuse what would corrupt the bank: a head too small, a non-finite loss."""

from __future__ import annotations

import math

import torch
from avalanche.core import SupervisedPlugin

from avalanche_litelora.models.heads import head_capacity
from avalanche_litelora.training.distributed import any_rank, make_optimizer
from avalanche_litelora.training.plugins._access import lora_model


def _bank_keys(key: str) -> bool:
    """State entries that training may change: adapters, gate, head, bank metadata."""
    return ".adapters." in key or key.startswith(("gate.", "head.")) or key == "_extra_state"


class BankGuardPlugin(SupervisedPlugin, supports_distributed=True):
    """Checks each experience before the bank changes and restores it on a non-finite loss.

    Put it first in the plugin list: it snapshots the bank before the candidate opens.
    """

    def __init__(self):
        super().__init__()
        self._snapshot = None

    def before_train_dataset_adaptation(self, strategy, **kwargs):
        """An empty experience would open an adapter that nothing trains: refuse it first."""
        if len(strategy.experience.dataset) == 0:
            raise ValueError(
                f"experience {strategy.experience.current_experience} has no training "
                "samples: there is nothing to train its adapter on; leave it out of the stream"
            )

    def before_training_exp(self, strategy, **kwargs):
        model = lora_model(strategy)
        classes = strategy.experience.classes_in_this_experience
        capacity = head_capacity(model.head)
        if capacity is not None and classes and max(classes) >= capacity:
            raise ValueError(
                f"experience {strategy.experience.current_experience} has class "
                f"{max(classes)} but the head holds only {capacity} classes"
            )
        self._snapshot = {
            k: (v.detach().clone() if torch.is_tensor(v) else v)
            for k, v in model.state_dict().items()
            if _bank_keys(k)
        }

    def before_update(self, strategy, **kwargs):
        """After every plugin has shaped the loss and before any weight moves."""
        loss = strategy.loss
        if not any_rank(not bool(torch.isfinite(loss).all())):  # every rank stops together
            return
        exp = strategy.experience.current_experience
        iteration = strategy.clock.train_exp_iterations
        self._restore(strategy)
        raise FloatingPointError(
            f"non-finite loss ({float(loss.detach()) if loss.numel() == 1 else 'tensor'}) "
            f"at experience {exp}, iteration {iteration}: training stopped and the adapter "
            "bank was restored to its state before this experience"
        )

    def _restore(self, strategy) -> None:
        model = lora_model(strategy)
        if self._snapshot is None:
            return
        for plugin in strategy.plugins:  # e.g. the selection phase hands back the optimizer
            if plugin is not self and hasattr(plugin, "abort_experience"):
                plugin.abort_experience(strategy)
        model.gate.selecting = False
        model.load_state_dict(self._snapshot, strict=False)
        make_optimizer(strategy, remove_params=True)
        self._snapshot = None

    def after_training_exp(self, strategy, **kwargs):
        self._snapshot = None
