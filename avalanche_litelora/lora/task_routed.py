"""Task-routed per-task LoRA: every task's inputs go through its own adapter only.

The zero-forgetting reference on task-incremental streams. SD-LoRA's bank (what
:class:`~avalanche_litelora.training.PerTaskLoRAStrategy` trains) sums every adapter for every
input, so each new adapter changes the function earlier tasks were learned with; here a
task's adapter and head see only that task's samples, so an earlier task's predictions
cannot change once its experience is over.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import Tensor

from avalanche_litelora.lora.model import TaskIncrementalLoRAClassifier
from avalanche_litelora.registry import register


@register
class TaskRoutedLoRAClassifier(TaskIncrementalLoRAClassifier):
    """A :class:`LoRAClassifier` whose forward pass opens, per sample, its task's adapter alone.

    ``task_adapters`` maps an Avalanche task label to the adapter trained for it; a task with
    no adapter yet runs on the bare backbone. A minibatch mixing tasks is split by task,
    each group gets its own gate values, and the features are put back in order.
    """

    def __init__(self, backbone, **kwargs):
        if not kwargs.get("task_incremental", True):
            raise ValueError("task routing needs task labels: use task_incremental=True")
        kwargs["task_incremental"] = True
        # a finished task's function never changes: its adapter keeps its norms at the boundary
        kwargs.setdefault("boundary", "preserve")
        kwargs.setdefault("magnitude_scope", "per_layer")
        super().__init__(backbone, **kwargs)
        self.task_adapters: Dict[int, str] = {}

    def _gates_for(self, task: int) -> Dict[str, Tensor]:
        own = self.task_adapters.get(int(task))
        ref = next(iter(self.gate.logits.values()), None)
        one = torch.ones((), device=ref.device, dtype=ref.dtype) if ref is not None else torch.ones(())
        return {name: one if name == own else torch.zeros_like(one) for name in self.adapter_names}

    def forward(self, x: Tensor, task_labels: Optional[Tensor] = None) -> Tensor:
        if task_labels is None:
            raise ValueError("a task-routed model needs task labels: each task uses its own adapter")
        if not torch.is_tensor(task_labels):
            task_labels = torch.full((x.shape[0],), int(task_labels), dtype=torch.long, device=x.device)
        tasks = torch.unique(task_labels).tolist()
        if len(tasks) == 1:
            self._push_gate_values(self._gates_for(tasks[0]))
            return self.head(self.backbone(x), task_labels)
        features = None
        for task in tasks:
            idx = (task_labels == task).nonzero(as_tuple=True)[0]
            self._push_gate_values(self._gates_for(task))
            group = self.backbone(x[idx])
            if features is None:
                features = group.new_zeros((x.shape[0],) + tuple(group.shape[1:]))
            features = features.index_copy(0, idx, group)
        return self.head(features, task_labels)

    @torch.no_grad()
    def merge(self) -> None:
        """No single merged weight serves every task: evaluation stays unmerged."""

    def prune(self, name: str) -> None:
        super().prune(name)
        self.task_adapters = {t: n for t, n in self.task_adapters.items() if n != name}

    def get_extra_state(self) -> dict:
        return {**super().get_extra_state(), "task_adapters": dict(self.task_adapters)}

    def set_extra_state(self, state: dict) -> None:
        super().set_extra_state(state)
        self.task_adapters = {int(t): n for t, n in state.get("task_adapters", {}).items()}
