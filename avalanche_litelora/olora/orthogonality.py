"""O-LoRA's two regularisers, as the official trainer computes them (cmnfriend/O-LoRA).

``src/uie_trainer_lora.py`` L90-109: for every adapted layer, the sum of the absolute
entries of ``A_old A_new^T`` (``A_old``: every earlier task's ``A`` stacked, ``r_sum x d``;
``A_new``: the training adapter's, ``r x d``), and the Frobenius norms (not squared) of the
new ``A`` and ``B``; loss = task loss + lambda_1 * orthogonal + lambda_2 * l2. The ``A`` are
the raw factors, whatever the adapters' scale.
"""

from __future__ import annotations

from typing import Dict, Iterable, Sequence

import torch
from torch import Tensor


def orthogonality_loss(old: Sequence[Tensor], new: Tensor) -> Tensor:
    """``sum |A_old A_new^T|`` over the stacked earlier ``A`` (zero when there are none)."""
    if not old:
        return new.new_zeros(())
    stacked = torch.cat([a.detach() for a in old], dim=0)
    return (stacked @ new.T).abs().sum()


def l2_loss(tensors: Iterable[Tensor]) -> Tensor:
    """``sum ||T||_F`` over the new adapter's factors."""
    return sum(torch.linalg.vector_norm(t) for t in tensors)


def overlap(old: Sequence[Tensor], new: Tensor) -> float:
    """``||A_old A_new^T||_F / (||A_old||_F ||A_new||_F)``: 0 for orthogonal row spaces (a read-out).

    Scale-free, so a penalty that only shrank ``A_new`` would not lower it.
    """
    if not old:
        return 0.0
    stacked = torch.cat([a.detach().double() for a in old], dim=0)
    a = new.detach().double()
    denominator = torch.linalg.vector_norm(stacked) * torch.linalg.vector_norm(a)
    return float(torch.linalg.vector_norm(stacked @ a.T) / denominator.clamp_min(1e-300))


def layer_factors(layer, candidate: str) -> Dict[str, tuple]:
    """Per output slice of one bank layer: (the earlier adapters' ``A``, the candidate's ``A``)."""
    out = {}
    for key in layer.out_slices:
        old = [ad.A[key] for name, ad in layer.adapters.items() if name != candidate]
        out[key] = (old, layer.adapters[candidate].A[key])
    return out
