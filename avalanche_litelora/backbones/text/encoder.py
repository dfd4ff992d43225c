"""A Hugging Face transformers encoder as a backbone: token tensors in, pooled features out.

It follows timm's classifier API (``num_features``, ``reset_classifier``, a ``head``), so
:class:`~avalanche_litelora.models.LoRAClassifier`, the LoRA strategies and the harness's
fine-tuned baselines treat it like the ViTs: LoRA goes on any of its ``nn.Linear`` layers by
module name (``attention.self.query``, ``attention.self.value``, globs).
"""

from __future__ import annotations

from torch import Tensor, nn

from .tokens import unpack_tokens
from avalanche_litelora.checks import check_count

POOLINGS = ("mean", "cls", "pooler")


class HFTextEncoder(nn.Module):
    """``(B, 2, L)`` ids + mask -> ``(B, hidden)`` pooled features -> ``head``.

    ``pooling``: ``"mean"`` (masked mean of the last hidden states, what sentence
    encoders such as all-MiniLM-L6-v2 are trained for), ``"cls"`` (first token) or
    ``"pooler"`` (the model's own pooler output).
    """

    def __init__(self, encoder: nn.Module, pooling: str = "mean", num_classes: int = 0):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        hidden = getattr(getattr(encoder, "config", None), "hidden_size", None)
        if not isinstance(hidden, int):
            raise TypeError("encoder must be a transformers model whose config has hidden_size")
        if pooling == "pooler" and getattr(encoder, "pooler", None) is None:
            raise ValueError("pooling='pooler' needs a model built with its pooling layer")
        self.model = encoder
        self.pooling = pooling
        self.num_features = hidden
        self.pretrained_cfg = {"classifier": "head"}  # what LoRA injection must leave alone
        self.head: nn.Module = nn.Identity()
        self.reset_classifier(num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh linear head (``0``: none, the model returns features), timm style."""
        check_count("num_classes", num_classes, 0)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:
        ids, mask = unpack_tokens(x)
        out = self.model(input_ids=ids, attention_mask=mask)
        if self.pooling == "pooler":
            return out.pooler_output
        hidden = out.last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.forward_features(x))
