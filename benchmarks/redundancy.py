"""The redundancy analysis in the harness: the final bank of every run, and LiteLoRA's candidates.

Answers the paper's question: does a candidate whose update already lies in the span of the
earlier adapters get pruned? The probe reads each candidate when the selection phase starts,
after it trained and before its gate is decided; pruned candidates vanish from the model, so
the final bank alone cannot say.
"""

from __future__ import annotations

import statistics
from typing import Any, Dict, List, Sequence

import torch
from avalanche.core import SupervisedPlugin
from avalanche.models.utils import avalanche_forward
from torch.utils.data import DataLoader

from avalanche_litelora.analysis import analyse_model
from avalanche_litelora.models.access import lora_model


class CandidateRedundancyProbe(SupervisedPlugin):
    """Records how much of each LiteLoRA candidate the earlier adapters already span."""

    def __init__(self):
        super().__init__()
        self.records: List[Dict[str, Any]] = []
        self._seen_this_experience = False

    def before_training_exp(self, strategy, **kwargs):
        self._seen_this_experience = False

    def before_training_iteration(self, strategy, **kwargs):
        # the selection phase runs inside after_training_exp, through training_epoch: its
        # first iteration is the first moment the candidate is trained and not yet decided
        model = lora_model(strategy)
        if self._seen_this_experience or not model.gate.selecting:
            return
        self._seen_this_experience = True
        report = analyse_model(model, slices=False).model
        i = report.adapters.index(model.candidate)
        self.records.append({
            "experience": strategy.clock.train_exp_counter,
            "candidate": model.candidate,
            "captured": float(report.captured[i]),
            "max_overlap": float(report.overlap[i, :i].nan_to_num(0.0).max()),
            "benefit_nats": candidate_benefit(strategy, model),
        })

    def after_training_iteration(self, strategy, **kwargs):
        model = lora_model(strategy)
        if self.records and model.gate.selecting and model.candidate == self.records[-1]["candidate"]:
            # the logit as the phase leaves it, before the prune plugin reads its sign
            self.records[-1]["final_logit"] = float(model.gate.logits[model.candidate].detach())

    def checkpoint_state(self) -> Dict[str, Any]:  # a resumed run keeps earlier records
        return {"records": [dict(r) for r in self.records]}

    def load_checkpoint_state(self, state: Dict[str, Any]) -> None:
        self.records = [dict(r) for r in state["records"]]

    def decisions(self, strategy) -> List[Dict[str, Any]]:
        """The records, each marked kept or pruned by the end of the run."""
        pruned = set(lora_model(strategy).pruned_adapters)
        return [dict(r, pruned=r["candidate"] in pruned) for r in self.records]


@torch.no_grad()
def candidate_benefit(strategy, model, max_samples: int = 1024) -> float:
    """How much the open candidate lowers the selection loss, in nats per sample.

    The strategy's training criterion (current classes only, class-incremental) on up to
    ``max_samples`` of the experience's training data, in evaluation mode, with the
    candidate's gate closed minus open: the quantity lambda is weighed against. Reads the
    data in order under a forked generator, so a run is the same with or without the probe.
    """
    name, was_training = model.candidate, model.training
    logit = model.gate.logits[name]
    saved = logit.detach().clone()
    model.eval()
    with torch.random.fork_rng(devices=[]):  # a DataLoader draws its base seed from the global generator
        try:
            closed_minus_open, seen = _closed_minus_open(strategy, logit, max_samples)
        finally:
            logit.data.copy_(saved)
            model.train(was_training)
    return closed_minus_open / max(seen, 1)


def _closed_minus_open(strategy, logit, max_samples: int):
    closed_minus_open, seen = 0.0, 0
    for batch in DataLoader(strategy.experience.dataset, batch_size=256):
        x, y, t = (v.to(strategy.device) for v in (batch[0], batch[1], batch[-1]))
        losses = []
        for value in (-1.0, 1.0):  # closed, open: the gate reads the logit's sign
            logit.data.fill_(value)
            losses.append(float(strategy._criterion(avalanche_forward(strategy.model, x, t), y)))
        closed_minus_open += (losses[0] - losses[1]) * len(y)
        seen += len(y)
        if seen >= max_samples:
            break
    return closed_minus_open, seen


def bank_summary(model) -> Dict[str, float]:
    """Model-level redundancy of a final bank (NaN-free for a bank of one adapter)."""
    report = analyse_model(model, slices=False).model
    n = len(report.adapters)
    return {
        "adapters": n,
        "mean_overlap": report.mean_pairwise_overlap if n > 1 else 0.0,
        "mean_captured": report.mean_captured if n > 1 else 0.0,
        "rank90": report.rank90,
        "rank99": report.rank99,
    }


def pruning_vs_overlap(candidates: Sequence[Dict[str, Any]]) -> str:
    """A Markdown paragraph: captured fraction of pruned against kept candidates."""
    pruned = [c["captured"] for c in candidates if c["pruned"]]
    kept = [c["captured"] for c in candidates if not c["pruned"]]

    def describe(values):
        return f"{statistics.fmean(values):.3f} (n={len(values)})" if values else "none"

    return (
        f"Mean fraction of a LiteLoRA candidate's update inside the span of the earlier adapters, "
        f"measured when its selection phase starts: pruned candidates {describe(pruned)}, "
        f"kept candidates {describe(kept)}.\n"
    )
