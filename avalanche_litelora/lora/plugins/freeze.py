"""After each experience: freeze the bank, so finished adapters never change again."""

from __future__ import annotations

from avalanche.core import SupervisedPlugin
from avalanche.training.utils import _at_task_boundary

from avalanche_litelora.adapters.access import adapter_model_of
from avalanche_litelora.lora.model import LoRAClassifier
from avalanche_litelora.registry import register


@register
class FreezeBankPlugin(SupervisedPlugin, supports_distributed=True):
    """Freezes the kept candidate (adapter, magnitude-form switch, logit), then hands the
    model back with what trains between experiences: the head and the magnitudes the next
    experience trains (:meth:`~avalanche_litelora.LoRAClassifier.end_experience`).

    Regularisation plugins that follow (EWC, MAS, SI) compute their importances from
    there; the frozen adapter's optimizer state (momentum of A and B, the logit's
    moments) is dropped: it could only ever move a frozen tensor. On an online stream the
    bank is frozen once, at the end of the experience's last sub-experience.
    """

    lifecycle_step = "close"

    def after_training_exp(self, strategy, **kwargs):
        if not _at_task_boundary(strategy.experience, before=False):
            return
        model = adapter_model_of(strategy, LoRAClassifier)
        name = model.candidate
        if name is not None:
            model.freeze(name)
            frozen = [model.gate.logits[name]]
            for layer in model.lora_layers().values():
                adapter = layer.adapters[name]
                frozen += list(adapter.A.values()) + list(adapter.B.values())
            for p in frozen:
                strategy.optimizer.state.pop(p, None)
        model.end_experience()
