"""Open the gate candidate, a new adapter in every wrapped layer, before Avalanche sees the model.

The bank grows where Avalanche grows a model: before the strategy's model adaptation and
optimizer update, and before any plugin's ``before_training_exp``. So the optimizer,
and every plugin that records the model's parameters (SI, RWalk, EWC), see the new
adapter from the start of the experience. It is opened at the start of ``train()``
(RWalk records the parameters there) and, for the later experiences of one ``train()``
call, before the experience's dataset is adapted; an online stream opens one per
experience, at its first sub-experience.
"""

from __future__ import annotations

from typing import Optional

from avalanche.core import SupervisedPlugin
from avalanche.training.utils import _at_task_boundary

from avalanche_litelora.checks import check_flag
from avalanche_litelora.training.distributed import make_optimizer, drop_ddp_wrapper, wrap_for_training
from avalanche_litelora.training.optimizer_groups import place_new_parameters
from avalanche_litelora.adapters.access import adapter_model_of
from avalanche_litelora.lora.model import LoRAClassifier
from avalanche_litelora.registry import register


@register
class OpenCandidatePlugin(SupervisedPlugin, supports_distributed=True):
    """Adds the experience's adapter, logit and magnitudes, then sets the magnitude phase.

    Each experience starts with a fresh optimizer state, as the reference code's per-task
    optimizer has: momentum left from the previous experience would otherwise keep moving
    the head rows of earlier classes. The new tensors join the user's optimizer groups (see
    :mod:`avalanche_litelora.training.optimizer_groups`). Under torchrun the model is then
    (re)wrapped in DDP, so the new adapter's gradients are averaged across ranks.

    :param train_past_magnitudes: SD-LoRA trains the magnitudes of earlier adapters with
        the new one; ``False`` keeps every finished adapter's magnitude frozen too.
    :param single_adapter: open one adapter on the first experience and keep training it
        (sequential LoRA) instead of one per experience.
    """

    lifecycle_step = "open"

    def __init__(self, train_past_magnitudes: bool = True, single_adapter: bool = False):
        super().__init__()
        self.train_past_magnitudes = check_flag("train_past_magnitudes", train_past_magnitudes)
        self.single_adapter = check_flag("single_adapter", single_adapter)

    def open_for(self, model, experience: Optional[object]) -> None:
        """Make ``model.candidate`` the adapter the coming experience trains.

        ``experience`` is ``None`` at the start of ``train()``, before Avalanche names it;
        a subclass that needs it (task routing) opens nothing then.
        """
        if model.candidate is None and not (self.single_adapter and model.adapter_names):
            model.open_candidate()

    def _prepare(self, strategy, experience) -> None:
        drop_ddp_wrapper(strategy)  # Avalanche's head growth and optimizer update see plain names
        model = adapter_model_of(strategy, LoRAClassifier)
        self.open_for(model, experience)
        place_new_parameters(strategy.optimizer, model)

    def before_training(self, strategy, **kwargs):
        self._prepare(strategy, None)

    def before_train_dataset_adaptation(self, strategy, **kwargs):
        if _at_task_boundary(strategy.experience, before=True):
            self._prepare(strategy, strategy.experience)
        else:
            drop_ddp_wrapper(strategy)

    def before_training_exp(self, strategy, **kwargs):
        model = adapter_model_of(strategy, LoRAClassifier)
        model.gate.selecting = False
        model.magnitude_phase(self.train_past_magnitudes)
        if _at_task_boundary(strategy.experience, before=True):
            make_optimizer(strategy, reset_optimizer_state=True)
        wrap_for_training(strategy)
