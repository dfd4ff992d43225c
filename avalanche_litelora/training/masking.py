"""Restrict a class-incremental loss to the current experience's classes."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor


def keep_only_classes(logits: Tensor, classes: Iterable[int]) -> Tensor:
    """Logits with every column outside ``classes`` set to -inf (no gradient reaches them)."""
    keep = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    index = torch.as_tensor(sorted(set(int(c) for c in classes)), dtype=torch.long)
    index = index[index < logits.shape[-1]].to(logits.device)
    keep[index] = True
    return logits.masked_fill(~keep, float("-inf"))
