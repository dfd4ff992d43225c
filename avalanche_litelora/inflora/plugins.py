"""InfLoRA as Avalanche plugins, one lifecycle job each.

Order (as :class:`~avalanche_litelora.inflora.strategy.InfLoRAStrategy` appends them): the
bank's ``OpenCandidatePlugin`` opens the experience's adapter, :class:`DesignDownProjectionPlugin`
sets and freezes its ``A``, :class:`SubspaceMemoryPlugin` updates the memory once it has
trained, ``FreezeBankPlugin`` freezes it. The memory is the only state outside the model: it
goes into checkpoints through ``checkpoint_state()``.
"""

from __future__ import annotations

from typing import Dict, Optional

from avalanche.core import SupervisedPlugin
from avalanche.training.utils import _at_task_boundary

from avalanche_litelora.checks import check_count, check_real
from avalanche_litelora.inflora.representations import input_representations
from avalanche_litelora.inflora.subspace import (
    LayerMemory,
    design_down_projection,
    memory_dimensions,
    threshold_for,
    update_memory,
)
from avalanche_litelora.adapters.layer import set_trainable
from avalanche_litelora.adapters.access import adapter_model_of
from avalanche_litelora.lora.model import LoRAClassifier
from avalanche_litelora.training.distributed import drop_ddp_wrapper, wrap_for_training
from avalanche_litelora.registry import register


def _representations(strategy, model) -> Dict:
    """The experience's input representations at every adapter layer (its training data)."""
    return input_representations(model, model.lora_layers(), strategy.dataloader, strategy.device)


def stream_length(experience) -> Optional[int]:
    """How many experiences the stream holding ``experience`` has (``None`` when unknown)."""
    origin = getattr(experience, "origin_experience", None)  # an online sub-experience
    for exp in (origin, experience):
        try:
            return len(exp.origin_stream)
        except (AttributeError, TypeError):
            continue
    return None


@register
class SubspaceMemoryPlugin(SupervisedPlugin, supports_distributed=True):
    """``after_training_exp``: DualGPM's update of every layer's stored input subspace.

    As the official code (``methods/inflora.py`` L188-200), the representations are taken
    again once the task has trained, with its adapter in place, on the task's training data;
    the threshold goes linearly from ``threshold_start`` (first task) towards
    ``threshold_end`` (reached at ``total_tasks``).

    :param total_tasks: the schedule's length; ``None``: the training stream's length.
    """

    def __init__(self, threshold_start: float = 0.95, threshold_end: float = 1.0,
                 total_tasks: Optional[int] = None):
        super().__init__()
        self.threshold_start = check_real("threshold_start", threshold_start, positive=True)
        self.threshold_end = check_real("threshold_end", threshold_end, positive=True)
        self.total_tasks = None if total_tasks is None else check_count("total_tasks", total_tasks)
        #: Per adapter layer, the stored subspace (none before the first task ends).
        self.memory: Dict[str, LayerMemory] = {}
        # Run state, private: the checkpoint fingerprint compares plugins' public settings.
        self._tasks_done = 0
        #: The threshold of each update, in order (a read-out).
        self.thresholds = []

    @property
    def tasks_done(self) -> int:
        """Tasks whose subspace is stored (the official ``_cur_task`` + 1)."""
        return self._tasks_done

    def _total(self, strategy) -> int:
        total = self.total_tasks or stream_length(strategy.experience)
        if total is None:
            raise ValueError(
                "InfLoRA's threshold schedule needs the stream's length, and this experience "
                "does not say it: pass total_tasks=<number of experiences>"
            )
        return total

    def after_training_exp(self, strategy, **kwargs):
        if not _at_task_boundary(strategy.experience, before=False):
            return
        model = adapter_model_of(strategy, LoRAClassifier)
        threshold = threshold_for(self.tasks_done, self._total(strategy), self.threshold_start, self.threshold_end)
        for name, representation in _representations(strategy, model).items():
            self.memory[name] = update_memory(self.memory.get(name), representation, min(threshold, 1.0))
        self.thresholds.append(threshold)
        self._tasks_done += 1

    def dimensions(self) -> Dict[str, int]:
        """Per layer, the dimension of the input space the bank protects."""
        return memory_dimensions(self.memory)

    def checkpoint_state(self) -> dict:
        return {
            "memory": {name: m.state() for name, m in self.memory.items()},
            "tasks_done": self.tasks_done,
            "thresholds": list(self.thresholds),
        }

    def load_checkpoint_state(self, state: dict) -> None:
        self.memory = {name: LayerMemory.from_state(m) for name, m in state["memory"].items()}
        self._tasks_done = int(state["tasks_done"])
        self.thresholds = [float(t) for t in state["thresholds"]]


@register
class DesignDownProjectionPlugin(SupervisedPlugin, supports_distributed=True):
    """``before_training_exp``: the new adapter's ``A`` from the task's inputs, then frozen.

    Runs after the bank opened the adapter (its ``B`` is zero, so the pass sees the model
    the earlier tasks left). Per layer, ``A_t`` is the top singular directions of the
    representation with the stored subspace projected out, over sqrt(3)
    (``methods/inflora.py`` L116-158), and every output slice shares it, as the official
    k and v do. ``A_t`` and the magnitudes never train; ``B_t`` and the head do
    (L93-108). ``memory`` is the :class:`SubspaceMemoryPlugin` whose store it reads.
    """

    def __init__(self, memory: SubspaceMemoryPlugin):
        super().__init__()
        self._memory = memory

    def before_training_exp(self, strategy, **kwargs):
        model = adapter_model_of(strategy, LoRAClassifier)
        name = model.candidate
        if name is None:
            return
        layers = model.lora_layers()
        if _at_task_boundary(strategy.experience, before=True):
            for layer_name, representation in _representations(strategy, model).items():
                layer = layers[layer_name]
                a = design_down_projection(representation, self._memory.memory.get(layer_name), layer.rank)
                for param in layer.adapters[name].A.values():
                    param.data.copy_(a.to(param.dtype))
        # Every sub-experience: the bank's magnitude phase hands A and the magnitude back.
        fixed = [p for layer in layers.values() for side in (layer.adapters[name].A, layer.adapters[name].magnitude)
                 for p in side.values()]
        set_trainable(fixed, False)
        for p in fixed:
            strategy.optimizer.state.pop(p, None)
        drop_ddp_wrapper(strategy)
        wrap_for_training(strategy)  # under torchrun, DDP over what trains now
