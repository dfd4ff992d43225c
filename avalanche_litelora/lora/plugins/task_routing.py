"""Before each experience of a task-routed bank: give the experience's task its own adapter."""

from __future__ import annotations

from avalanche_litelora.lora.plugins.candidate import OpenCandidatePlugin
from avalanche_litelora.registry import register


@register
class OpenTaskAdapterPlugin(OpenCandidatePlugin):
    """Opens an adapter for a task the bank has not seen; a task seen before trains its own.

    Past magnitudes never train: another task's adapter must not move with this one.
    """

    def __init__(self):
        super().__init__(train_past_magnitudes=False)

    def open_for(self, model, experience) -> None:
        if experience is None:
            return  # the task is known once Avalanche names the experience
        task = int(experience.task_label)
        known = model.task_adapters.get(task)
        if known is not None and model.candidate is None:
            model.gate.candidate = known  # the base plugin then trains it instead of opening one
        super().open_for(model, experience)
        model.task_adapters[task] = model.candidate
