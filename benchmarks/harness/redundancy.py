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

from avalanche_litelora.analysis import analyse_model
from avalanche_litelora import LoRAClassifier
from avalanche_litelora.adapters.access import adapter_model_of
from avalanche_litelora.lora.plugins.candidate_losses import candidate_losses


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
        model = adapter_model_of(strategy, LoRAClassifier)
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
            **candidate_losses(strategy, model),
        })

    def after_training_iteration(self, strategy, **kwargs):
        model = adapter_model_of(strategy, LoRAClassifier)
        if self.records and model.gate.selecting and model.candidate == self.records[-1]["candidate"]:
            # the logit as the phase leaves it, before the prune plugin reads its sign
            self.records[-1]["final_logit"] = float(model.gate.logits[model.candidate].detach())

    def checkpoint_state(self) -> Dict[str, Any]:  # a resumed run keeps earlier records
        return {"records": [dict(r) for r in self.records]}

    def load_checkpoint_state(self, state: Dict[str, Any]) -> None:
        self.records = [dict(r) for r in state["records"]]

    def decisions(self, strategy) -> List[Dict[str, Any]]:
        """The records, each marked kept or pruned by the end of the run."""
        pruned = set(adapter_model_of(strategy, LoRAClassifier).pruned_adapters)
        return [dict(r, pruned=r["candidate"] in pruned) for r in self.records]


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
