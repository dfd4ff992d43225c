"""Class-incremental cross-entropy on the current experience's classes only."""

from __future__ import annotations

import warnings

from avalanche.core import SupervisedPlugin

from avalanche_litelora.training.masking import keep_only_classes


class SingleClassExperienceWarning(UserWarning):
    """An experience with one class gives the current-classes loss nothing to separate."""


class CurrentClassesLossPlugin(SupervisedPlugin, supports_distributed=True):
    """Masks the logits of every class not in the current experience during training.

    With a growing head, a plain cross-entropy pushes the old classes' logits down on
    every new-class sample; LiteLoRA (like its SD-LoRA base) trains on the new classes only.
    """

    def before_training_exp(self, strategy, **kwargs):
        classes = strategy.experience.classes_in_this_experience
        if len(classes) == 1:
            warnings.warn(
                f"experience {strategy.experience.current_experience} holds the single class "
                f"{classes[0]}: cross-entropy on the current classes only is zero, so nothing "
                "trains on it (LiteLoRA then prunes its adapter); put at least two classes in "
                "each experience",
                SingleClassExperienceWarning,
                stacklevel=2,
            )

    def after_forward(self, strategy, **kwargs):
        classes = strategy.experience.classes_in_this_experience
        strategy.mb_output = keep_only_classes(strategy.mb_output, classes)
