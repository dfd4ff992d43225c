"""Before each experience: open the gate candidate, a new adapter in every wrapped layer."""

from __future__ import annotations

from avalanche.core import SupervisedPlugin

from avalanche_litelora.training.distributed import make_optimizer, unwrap_model, wrap_for_training
from avalanche_litelora.training.plugins._access import lora_model


class OpenCandidatePlugin(SupervisedPlugin, supports_distributed=True):
    """Adds the experience's adapter, logit and magnitudes, then sets the magnitude phase.

    Avalanche builds the optimizer before plugins run, so the plugin calls
    ``strategy.make_optimizer()`` to put the new tensors in it, with a fresh state as the
    reference code's per-task optimizer has: momentum left from the previous experience
    would otherwise keep moving the head rows of earlier classes. Under torchrun the model
    is then (re)wrapped in DDP, so the new adapter's gradients are averaged across ranks.

    :param train_past_magnitudes: SD-LoRA trains the magnitudes of earlier adapters with
        the new one; ``False`` keeps every finished adapter's magnitude frozen too.
    :param single_adapter: open one adapter on the first experience and keep training it
        (sequential LoRA) instead of one per experience.
    """

    def __init__(self, train_past_magnitudes: bool = True, single_adapter: bool = False):
        super().__init__()
        for name, value in (("train_past_magnitudes", train_past_magnitudes), ("single_adapter", single_adapter)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, got {value!r}")
        self.train_past_magnitudes = train_past_magnitudes
        self.single_adapter = single_adapter

    def before_train_dataset_adaptation(self, strategy, **kwargs):
        """Avalanche's head growth and optimizer update then see the plain model's names."""
        unwrap_model(strategy)

    def before_training_exp(self, strategy, **kwargs):
        model = lora_model(strategy)
        if model.candidate is None and not (self.single_adapter and model.adapter_names):
            model.open_candidate()
        model.gate.selecting = False
        model.set_trainable(
            candidate_adapter=True,
            candidate_magnitude=True,
            past_magnitudes=self.train_past_magnitudes,
            candidate_logit=False,
            head=True,
        )
        make_optimizer(strategy, reset_optimizer_state=True)
        wrap_for_training(strategy)
