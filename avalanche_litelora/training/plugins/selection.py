"""Inside each experience: the magnitude phase, then LiteLoRA's gate-selection phase."""

from __future__ import annotations

import math
import numbers
from typing import Optional

import torch
from avalanche.core import SupervisedPlugin

from avalanche_litelora.training.distributed import wrap_for_training
from avalanche_litelora.training.plugins._access import lora_model


def _finite(value) -> bool:
    """A real, finite number (not a bool): an infinite weight or rate only yields NaNs later."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


class GateSelectionPlugin(SupervisedPlugin, supports_distributed=True):
    """Trains only the candidate's gate logit for the last ``selection_epochs`` epochs.

    The loss becomes cross-entropy + ``lambda_sparsity`` * L1(beta), beta being the
    candidate's straight-through Gumbel-sigmoid gate (the same value in every wrapped
    layer, so its average over layers is itself). The phase has its own optimizer
    (AdamW, ``selection_lr``) and, optionally, its own minibatch size. The first adapter
    of the bank has nothing to be compared with and skips the phase.
    """

    def __init__(
        self,
        lambda_sparsity: float = 0.03,
        selection_epochs: int = 1,
        selection_lr: float = 0.05,
        selection_mb_size: Optional[int] = None,
    ):
        super().__init__()
        if not _finite(lambda_sparsity) or not lambda_sparsity >= 0:
            raise ValueError(f"lambda_sparsity must be a finite number >= 0, got {lambda_sparsity!r}")
        if isinstance(selection_epochs, bool) or not isinstance(selection_epochs, int) or selection_epochs < 1:
            raise ValueError(f"selection_epochs must be an integer >= 1, got {selection_epochs!r}")
        if not _finite(selection_lr) or not selection_lr > 0:
            raise ValueError(f"selection_lr must be a finite number > 0, got {selection_lr!r}")
        if selection_mb_size is not None and (
            isinstance(selection_mb_size, bool) or not isinstance(selection_mb_size, int) or selection_mb_size < 1
        ):
            raise ValueError(f"selection_mb_size must be a positive integer, got {selection_mb_size!r}")
        self.lambda_sparsity = float(lambda_sparsity)
        self.selection_epochs = selection_epochs
        self.selection_lr = float(selection_lr)
        self.selection_mb_size = selection_mb_size
        self.selecting = False
        self._saved_optimizer = None
        self._saved_mb_size = None
        self._start_epoch: Optional[int] = None

    def before_training(self, strategy, **kwargs):
        if self.selection_epochs >= strategy.train_epochs:
            raise ValueError(
                f"selection_epochs ({self.selection_epochs}) must be smaller than "
                f"train_epochs ({strategy.train_epochs}): the magnitude phase needs an epoch"
            )

    def before_training_exp(self, strategy, **kwargs):
        model = lora_model(strategy)
        has_earlier = any(n != model.candidate for n in model.adapter_names)
        if model.candidate is not None and has_earlier:
            self._start_epoch = strategy.train_epochs - self.selection_epochs
        else:
            self._start_epoch = None

    def before_training_epoch(self, strategy, **kwargs):
        if self._start_epoch is None or self.selecting:
            return
        if strategy.clock.train_exp_epochs == self._start_epoch:
            self._enter_selection(strategy, **kwargs)

    def _enter_selection(self, strategy, **loader_kwargs) -> None:
        model = lora_model(strategy)
        model.set_trainable(
            candidate_adapter=False,
            candidate_magnitude=False,
            past_magnitudes=False,
            candidate_logit=True,
            head=False,
        )
        model.gate.selecting = True
        logit = model.gate.logits[model.candidate]
        self._saved_optimizer = strategy.optimizer
        strategy.optimizer = torch.optim.AdamW([logit], lr=self.selection_lr, weight_decay=0.0)
        if self.selection_mb_size is not None:
            self._saved_mb_size = strategy.train_mb_size
            strategy.train_mb_size = self.selection_mb_size
            strategy.make_train_dataloader(**loader_kwargs)  # train()'s loader options
        wrap_for_training(strategy)  # under torchrun, DDP now averages the logit's gradient
        self.selecting = True

    def before_backward(self, strategy, **kwargs):
        if self.selecting and self.lambda_sparsity > 0:
            beta = lora_model(strategy).gate.last_candidate_value
            strategy.loss = strategy.loss + self.lambda_sparsity * beta.abs()

    def after_training_exp(self, strategy, **kwargs):
        """Leave the selection phase before the prune / freeze plugins decide."""
        self.abort_experience(strategy)

    def abort_experience(self, strategy) -> None:
        """Give the strategy back its optimizer and minibatch size (also on a failed experience)."""
        if not self.selecting:
            return
        strategy.optimizer = self._saved_optimizer
        if self._saved_mb_size is not None:
            strategy.train_mb_size = self._saved_mb_size
        self._saved_optimizer = self._saved_mb_size = None
        model = lora_model(strategy)
        model.gate.selecting = False
        if model.candidate is not None:
            logit = model.gate.logits[model.candidate]
            logit.requires_grad_(False)
            logit.grad = None
        self.selecting = False
