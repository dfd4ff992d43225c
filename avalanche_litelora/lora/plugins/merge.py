"""Evaluate with the open adapters folded into the base weights: the bare backbone's cost."""

from __future__ import annotations

from avalanche.core import SupervisedPlugin

from avalanche_litelora.adapters.access import adapter_model_of
from avalanche_litelora.lora.model import LoRAClassifier
from avalanche_litelora.registry import register


@register
class MergedEvalPlugin(SupervisedPlugin, supports_distributed=True):
    """``merge()`` before each evaluation, ``unmerge()`` after it (also inside training)."""

    def before_eval(self, strategy, **kwargs):
        adapter_model_of(strategy, LoRAClassifier).merge()

    def after_eval(self, strategy, **kwargs):
        adapter_model_of(strategy, LoRAClassifier).unmerge()
