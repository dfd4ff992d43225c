"""Token batches as one tensor, so Avalanche's datasets and default collate carry them.

A text sample is a ``LongTensor`` of shape ``(2, L)``: row 0 the token ids, row 1 the
attention mask (1 = real token, 0 = padding). A minibatch is then ``(B, 2, L)``, which the
text backbones unpack (:func:`unpack_tokens`); no custom collate function is needed.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import Tensor
from avalanche_litelora.checks import check_count


def pack_tokens(input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """``(N, L)`` ids and mask -> one ``(N, 2, L)`` LongTensor."""
    if input_ids.shape != attention_mask.shape or input_ids.dim() != 2:
        raise ValueError(
            f"input_ids and attention_mask must both be (N, L), got {tuple(input_ids.shape)} "
            f"and {tuple(attention_mask.shape)}"
        )
    return torch.stack([input_ids.long(), attention_mask.long()], dim=1)


def unpack_tokens(x: Tensor) -> Tuple[Tensor, Tensor]:
    """``(B, 2, L)`` -> ``(ids, mask)``, without the padding columns every sample shares.

    Only trailing columns that are padding in the whole batch are dropped, so the result is
    exact for right padding; a batch of short definitions then costs what its longest costs.
    """
    if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[1] != 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"text inputs must be a (batch, 2, length) tensor of ids and mask, got {shape}")
    if x.dtype.is_floating_point or x.dtype == torch.bool:
        raise TypeError(f"text inputs must hold integer token ids, got dtype {x.dtype}")
    ids, mask = x[:, 0], x[:, 1]
    used = torch.nonzero(mask.any(dim=0))
    length = int(used.max()) + 1 if used.numel() else 1
    return ids[:, :length], mask[:, :length]


def tokenize(tokenizer, texts: Sequence[str], max_length: int) -> Tensor:
    """Texts -> ``(N, 2, max_length)`` with a Hugging Face tokenizer (truncated, right-padded)."""
    check_count("max_length", max_length, 2)
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be strings")
    if not texts:
        return torch.zeros((0, 2, max_length), dtype=torch.long)
    encoded = tokenizer(texts, padding="max_length", truncation=True, max_length=max_length,
                        return_tensors="pt")
    return pack_tokens(encoded["input_ids"], encoded["attention_mask"])
