"""Evaluate with the open adapters folded into the base weights: the bare backbone's cost."""

from __future__ import annotations

from avalanche.core import SupervisedPlugin

from avalanche_litelora.models.access import lora_model


class MergedEvalPlugin(SupervisedPlugin, supports_distributed=True):
    """``merge()`` before each evaluation, ``unmerge()`` after it (also inside training)."""

    def before_eval(self, strategy, **kwargs):
        lora_model(strategy).merge()

    def after_eval(self, strategy, **kwargs):
        lora_model(strategy).unmerge()
