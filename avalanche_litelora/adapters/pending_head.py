"""A head whose input width is measured on the first experience, for headless backbones.

A backbone with no classifier the surgery recognises (a plain ``nn.Sequential`` feature
extractor, say) is taken to output features, and only its output width is unknown. Rather
than ask the user for ``feature_dim=``, the model holds a :class:`PendingHead` until the
first experience (training or evaluation) arrives; one dry forward pass of one of its
inputs, with no gradient and no random number drawn, tells the width, and the real
Avalanche head takes its place before Avalanche adapts the model and its optimizer.
"""

from __future__ import annotations

from typing import Mapping, Optional

import torch
from torch import Tensor, nn

from avalanche_litelora.adapters.heads import make_head
from avalanche_litelora.adapters.seeding import global_rng_untouched
from avalanche_litelora.adapters.surgery import CLASSIFIER_NAMES


class PendingHead(nn.Module):
    """Where the head will be: its kind and seed now, its input width at the first experience."""

    def __init__(self, task_incremental: bool, initial_out_features: int, seed: Optional[int]):
        super().__init__()
        self.task_incremental = task_incremental
        self.initial_out_features = initial_out_features
        self.seed = seed

    def build(self, in_features: int) -> nn.Module:
        return make_head(in_features, self.task_incremental, self.initial_out_features, seed=self.seed)

    def forward(self, *args, **kwargs):
        raise RuntimeError(
            "the head of a headless backbone is built when the first experience reaches the "
            "strategy (train or eval), from the backbone's output width; call the model "
            "through the strategy, or give feature_dim= to build it at once"
        )


def one_input_of(experience):
    """The first input of an experience's dataset, batched as its own collate would."""
    dataset = experience.dataset.eval()
    sample = dataset[0]
    collate = getattr(dataset, "collate_fn", None)
    if collate is not None:
        return collate([sample])[0]
    x = sample[0]
    return x.unsqueeze(0) if torch.is_tensor(x) else x


def _to(x, device):
    if torch.is_tensor(x):
        return x.to(device)
    if isinstance(x, Mapping):
        return {k: _to(v, device) for k, v in x.items()}
    return x


@torch.no_grad()
def measure_feature_dim(backbone: nn.Module, x) -> int:
    """The width of ``backbone(x)``, which must be ``(batch, features)``; nothing changes."""
    device = next((p.device for p in backbone.parameters()), torch.device("cpu"))
    was_training = backbone.training
    backbone.eval()
    try:
        with global_rng_untouched():
            out = backbone(_to(x, device))
    finally:
        backbone.train(was_training)
    if not torch.is_tensor(out) or out.dim() != 2:
        shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise ValueError(
            f"the backbone has no classifier the model recognises (see "
            f"avalanche_litelora.adapters.surgery: timm's, transformers' sequence classifiers', or "
            f"a Linear, a Sequential ending in one or an Avalanche head as the model's last layer, "
            f"named one of {list(CLASSIFIER_NAMES)}) and its output is {shape}, not (batch, "
            "features): pool or flatten its output to (batch, features) in the backbone, or give "
            "feature_dim= with a backbone that outputs features"
        )
    return int(out.shape[1])


def build_pending_head(model: nn.Module, experience) -> bool:
    """Replace ``model.head`` if it is pending, measuring on ``experience``; True if built."""
    if not isinstance(model.head, PendingHead):
        return False
    width = measure_feature_dim(model.backbone, one_input_of(experience))
    device = next((p.device for p in model.backbone.parameters()), torch.device("cpu"))
    model.head = model.head.build(width).to(device)
    return True


def head_for_loading(head: nn.Module, state_dict: Mapping[str, Tensor], prefix: str) -> nn.Module:
    """A pending head built at the width a saved head had, so its state dict loads as is."""
    if not isinstance(head, PendingHead):
        return head
    for key, value in state_dict.items():
        if key.startswith(prefix) and key.endswith("classifier.weight") and value.dim() == 2:
            return head.build(int(value.shape[1])).to(value.device)
    return head
