"""What a candidate is worth to its experience, and warnings when the gate's decisions look blind.

Read once when the selection phase starts: the training criterion (current classes only,
class-incremental) on up to ``max_samples`` of the experience's data, in evaluation mode,
with the candidate's gate closed and open. Their difference is the benefit the sparsity
term is weighed against; the closed loss is the scale of the relative lambda rule.
"""

from __future__ import annotations

import contextlib
import statistics
import warnings
from typing import Dict, List, Optional

import torch
from avalanche.models.utils import avalanche_forward
from torch.utils.data import DataLoader

from avalanche_litelora.training.plugins.autocast import AutocastPlugin

#: A decision pattern is judged once this many candidates have been decided.
MIN_DECISIONS = 3
#: Kept candidates whose benefits spread over more than this factor were not told apart.
BENEFIT_SPREAD = 10.0


class GateDecisionWarning(UserWarning):
    """The selection phase closed every candidate, or kept candidates of very unequal worth."""


@torch.no_grad()
def candidate_losses(strategy, model, max_samples: int = 1024) -> Dict[str, float]:
    """``loss_closed``, ``loss_open`` and ``benefit_nats`` (closed minus open), per sample.

    Reads the data in order under a forked generator, so a run is the same with or without
    this measurement.
    """
    logit = model.gate.logits[model.candidate]
    saved, was_training = logit.detach().clone(), model.training
    model.eval()
    totals, seen = [0.0, 0.0], 0
    with torch.random.fork_rng(devices=[]):  # a DataLoader draws its base seed from the global generator
        try:
            for batch in DataLoader(strategy.experience.dataset, batch_size=256):
                x, y, t = (v.to(strategy.device) for v in (batch[0], batch[1], batch[-1]))
                for i, value in enumerate((-1.0, 1.0)):  # closed, open: the gate reads the sign
                    logit.data.fill_(value)
                    with _forward_region(strategy):
                        out = avalanche_forward(strategy.model, x, t)
                    totals[i] += float(strategy._criterion(out.float(), y)) * len(y)
                seen += len(y)
                if seen >= max_samples:
                    break
        finally:
            logit.data.copy_(saved)
            model.train(was_training)
    closed, opened = totals[0] / max(seen, 1), totals[1] / max(seen, 1)
    return {"loss_closed": closed, "loss_open": opened, "benefit_nats": closed - opened}


def _forward_region(strategy):
    """The strategy's own autocast region, if one of its plugins sets one."""
    for plugin in strategy.plugins:
        if isinstance(plugin, AutocastPlugin):
            return plugin.region(strategy)
    return contextlib.nullcontext()


#: Below this many training steps a candidate may not have learned enough to lower the loss.
FEW_TRAINING_STEPS = 100


def _too_little_training(records: List[Dict[str, object]]) -> str:
    """The third cause, named only when the candidates trained few steps (Avalanche's default
    single epoch on a small experience: 16 steps for 1,000 images at minibatch 64)."""
    steps = [int(r["train_steps"]) for r in records if r.get("train_steps") is not None]
    if not steps or statistics.median(steps) >= FEW_TRAINING_STEPS:
        return ""
    return (f", or the candidates trained too little to lower the loss (about "
            f"{statistics.median(steps):g} training steps each: raise train_epochs; Avalanche's "
            "default is one epoch)")


class DecisionWatch:
    """Every judged candidate's losses, lambda and decision; warns once per pattern.

    A gate that closes every candidate, or keeps every one while their benefits differ by
    more than :data:`BENEFIT_SPREAD` times, is not telling candidates apart: lambda is off
    the stream's scale. The warning quotes the benefits so the fix can be read off.
    """

    def __init__(self):
        self.records: List[Dict[str, object]] = []
        self._warned = set()

    def judging(self, name: str, losses: Dict[str, float], lam: float, train_steps: Optional[int] = None) -> None:
        """``train_steps``: the optimizer steps the candidate trained before it is judged."""
        self.records.append(dict(losses, candidate=name, lambda_nats=lam, kept=None, train_steps=train_steps))

    def decided(self, name: str, kept: bool) -> None:
        if self.records and self.records[-1]["candidate"] == name and self.records[-1]["kept"] is None:
            self.records[-1]["kept"] = bool(kept)
            self._check()

    def _check(self) -> None:
        done = [r for r in self.records if r["kept"] is not None]
        if len(done) < MIN_DECISIONS:
            return
        benefits = [float(r["benefit_nats"]) for r in done]
        listed = ", ".join(f"{b:.3g}" for b in benefits)
        lam = statistics.median(float(r["lambda_nats"]) for r in done)
        if not any(r["kept"] for r in done) and "closed" not in self._warned:
            self._warned.add("closed")
            warnings.warn(
                f"the selection phase closed all {len(done)} candidates so far: their benefits were "
                f"[{listed}] nats against lambda ~{lam:.3g} nats. Either the bank serves this "
                f"stream already, or lambda_sparsity is too large for it{_too_little_training(done)}",
                GateDecisionWarning)
        positive = [b for b in benefits if b > 0]
        if (all(r["kept"] for r in done) and len(positive) == len(benefits)
                and max(positive) > BENEFIT_SPREAD * min(positive) and "kept" not in self._warned):
            self._warned.add("kept")
            warnings.warn(
                f"the selection phase kept all {len(done)} candidates so far although their benefits "
                f"spread over more than {BENEFIT_SPREAD:g}x: [{listed}] nats, lambda ~{lam:.3g} nats. "
                "lambda_sparsity is probably too small to tell them apart", GateDecisionWarning)

    def state(self) -> List[Dict[str, object]]:
        return [dict(r) for r in self.records]

    def load(self, records: List[Dict[str, object]]) -> None:
        self.records = [dict(r) for r in records]
