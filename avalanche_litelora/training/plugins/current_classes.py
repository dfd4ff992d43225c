"""Class-incremental cross-entropy on the current experience's classes only."""

from __future__ import annotations

from avalanche.core import SupervisedPlugin

from avalanche_litelora.training.masking import keep_only_classes


class CurrentClassesLossPlugin(SupervisedPlugin, supports_distributed=True):
    """Masks the logits of every class not in the current experience during training.

    With a growing head, a plain cross-entropy pushes the old classes' logits down on
    every new-class sample; LiteLoRA (like its SD-LoRA base) trains on the new classes only.
    """

    def after_forward(self, strategy, **kwargs):
        classes = strategy.experience.classes_in_this_experience
        strategy.mb_output = keep_only_classes(strategy.mb_output, classes)
