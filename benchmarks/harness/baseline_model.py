"""The model the Avalanche baselines fine-tune: the whole pretrained backbone plus an Avalanche head."""

from __future__ import annotations

from avalanche.models import MultiTaskModule
from torch import Tensor, nn

from avalanche_litelora.adapters.heads import find_classifier, make_head, remove_classifier


class FineTunedClassifier(MultiTaskModule):
    """Backbone features into an IncrementalClassifier (or a MultiHeadClassifier with task labels).

    Unlike :class:`~avalanche_litelora.LoRAClassifier` nothing is frozen: Naive, EWC,
    LwF, Replay and joint training fine-tune every weight, as they normally would.
    """

    def __init__(self, backbone: nn.Module, task_incremental: bool):
        super().__init__()
        how, in_features = find_classifier(backbone)
        remove_classifier(backbone, how)
        self.backbone = backbone
        self.head = make_head(in_features, task_incremental)
        for p in self.parameters():
            p.requires_grad_(True)

    def forward_single_task(self, x: Tensor, task_label: int) -> Tensor:
        """Avalanche's ``MultiTaskModule.forward`` routes each task's samples here (LwF too)."""
        features = self.backbone(x)
        if isinstance(self.head, MultiTaskModule):
            return self.head.forward_single_task(features, task_label)
        return self.head(features)
