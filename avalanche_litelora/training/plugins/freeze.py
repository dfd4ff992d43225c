"""After each experience: freeze the bank, so finished adapters never change again."""

from __future__ import annotations

from avalanche.core import SupervisedPlugin

from avalanche_litelora.training.plugins._access import lora_model


class FreezeBankPlugin(SupervisedPlugin, supports_distributed=True):
    """Freezes the kept candidate (adapter, magnitude-form switch, logit).

    Its optimizer state (momentum of A and B, the logit's moments) is dropped: it
    could only ever move a frozen tensor.
    """

    def after_training_exp(self, strategy, **kwargs):
        model = lora_model(strategy)
        name = model.candidate
        if name is None:
            return
        model.freeze(name)
        frozen = [model.gate.logits[name]]
        for layer in model.lora_layers().values():
            adapter = layer.adapters[name]
            frozen += list(adapter.A.values()) + list(adapter.B.values())
        for p in frozen:
            strategy.optimizer.state.pop(p, None)
