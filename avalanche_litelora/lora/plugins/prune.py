"""After each experience: prune the candidate if its evaluation gate is closed."""

from __future__ import annotations

import itertools
from typing import Dict

import torch
from avalanche.core import SupervisedPlugin
from avalanche.models.utils import avalanche_forward
from avalanche.training.utils import _at_task_boundary

from avalanche_litelora.checks import check_count, check_real
from avalanche_litelora.training.distributed import (
    broadcast_bank_,
    broadcast_decision,
    make_optimizer,
    wrap_for_training,
)
from avalanche_litelora.lora.phases import Phase
from avalanche_litelora.adapters.access import adapter_model_of
from avalanche_litelora.lora.model import LoRAClassifier
from avalanche_litelora.registry import register


@register
class PruneClosedCandidatePlugin(SupervisedPlugin, supports_distributed=True):
    """Removes a rejected candidate from the model and the optimizer, then refits the head.

    The head rows of the current classes were trained together with the candidate; once
    it is gone they are refit for ``refit_steps`` minibatches on the reused bank (the
    reference code skips this) under the training loss itself, so the refit sees what
    training saw: class-incremental, a minibatch of the current classes alone moves their
    rows only, and a rehearsed one (:mod:`avalanche_litelora.training.losses`) every seen
    class's. Under torchrun the decision is rank 0's, broadcast with its bank, so every rank
    keeps or prunes the same adapter.
    """

    lifecycle_step = "prune"

    def __init__(self, refit_steps: int = 50, refit_lr: float = 0.01):
        super().__init__()
        self.refit_steps = check_count("refit_steps", refit_steps, 0)
        self.refit_lr = check_real("refit_lr", refit_lr, positive=True)
        #: (adapter name, training experience index) of every pruned candidate.
        self.decisions = []
        #: Pruned candidate -> its gate logit when it was pruned: the model's ``gate_logits()``
        #: holds only the adapters it still has, and this is the number that decided.
        self.pruned_logits: Dict[str, float] = {}

    def after_training_exp(self, strategy, **kwargs):
        if not _at_task_boundary(strategy.experience, before=False):
            return  # an online stream decides once, after its last sub-experience
        model = adapter_model_of(strategy, LoRAClassifier)
        name = model.candidate
        if name is None or len(model.adapter_names) < 2:
            return
        broadcast_bank_(model)
        if broadcast_decision(model.gate.is_open(name)):
            return
        logit = float(model.gate.logits[name].detach())
        model.prune(name)
        make_optimizer(strategy, remove_params=True)
        self.decisions.append((name, strategy.clock.train_exp_counter))
        self.pruned_logits[name] = logit
        if self.refit_steps:
            self._refit_head(strategy, model)

    def checkpoint_state(self) -> dict:
        return {"decisions": [list(d) for d in self.decisions], "pruned_logits": dict(self.pruned_logits)}

    def load_checkpoint_state(self, state: dict) -> None:
        self.decisions = [(str(name), int(index)) for name, index in state["decisions"]]
        # files written before the logits were kept hold none
        self.pruned_logits = {str(n): float(v) for n, v in state.get("pruned_logits", {}).items()}

    @torch.enable_grad()
    def _refit_head(self, strategy, model) -> None:
        model.set_phase(Phase.HEAD_REFIT)
        params = [p for p in model.head.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(params, lr=self.refit_lr, momentum=0.9)
        wrap_for_training(strategy)  # the head alone trains now
        was_training = model.training
        model.train()
        batches = itertools.cycle(strategy.dataloader) if len(strategy.dataloader) else []
        for mbatch in itertools.islice(batches, self.refit_steps):
            x, y, t = (v.to(strategy.device) for v in (mbatch[0], mbatch[1], mbatch[-1]))
            logits = avalanche_forward(strategy.model, x, t)
            optimizer.zero_grad()
            strategy._criterion(logits, y).mean().backward()
            optimizer.step()
        model.train(was_training)
        for p in params:
            p.grad = None
