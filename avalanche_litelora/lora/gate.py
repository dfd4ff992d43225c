"""The LiteLoRA gate: one logit per adapter, shared by every wrapped layer.

In training the candidate's gate is a straight-through Gumbel-sigmoid (hard 0/1 forward,
soft sigmoid gradient); every other gate, and every gate at evaluation, is ``1[l > 0]``.
A pruned adapter simply has no logit any more (the reference's "minus infinity").
"""

from __future__ import annotations

import math
import numbers
from typing import Dict, Optional

import torch
from torch import Tensor, nn


def straight_through_gumbel_sigmoid(logit: Tensor, tau: float) -> Tensor:
    """Hard ``1[sigmoid((l + g) / tau) > 0.5]`` forward, soft sigmoid gradient backward."""
    uniform = torch.rand_like(logit).clamp(1e-10, 1.0 - 1e-10)
    gumbel = -torch.log(-torch.log(uniform))
    soft = torch.sigmoid((logit + gumbel) / tau)
    hard = (soft > 0.5).to(soft.dtype)
    return hard + (soft - soft.detach())  # exactly 0 or 1 forward


class AdapterGate(nn.Module):
    """Model-level gate values for the adapter bank.

    ``candidate`` names the adapter under selection: only it gets Gumbel noise, and only
    while ``selecting`` is on and the module is in training mode.
    """

    def __init__(self, tau: float = 1.0):
        super().__init__()
        if (
            not isinstance(tau, numbers.Real) or isinstance(tau, bool)
            or not math.isfinite(tau) or not tau > 0
        ):
            raise ValueError(f"tau must be a finite number > 0, got {tau!r}")
        self.tau = float(tau)
        self.logits = nn.ParameterDict()
        self.candidate: Optional[str] = None
        self.selecting = False
        #: The candidate's gate value in the last forward pass (the L1 term's input).
        self.last_candidate_value: Optional[Tensor] = None

    def add(self, name: str, init_logit: float, device: Optional[torch.device] = None) -> None:
        """New logit on ``device`` (the adapters'), else beside the existing logits."""
        if name in self.logits:
            raise ValueError(f"gate {name!r} already exists")
        if device is None and len(self.logits):
            device = next(iter(self.logits.values())).device
        self.logits[name] = nn.Parameter(torch.tensor(float(init_logit), device=device))

    def remove(self, name: str) -> None:
        del self.logits[name]
        if self.candidate == name:
            self.candidate = None
            self.selecting = False

    def is_open(self, name: str) -> bool:
        """The evaluation decision: ``l > 0``."""
        return bool(self.logits[name].detach() > 0)

    def eval_values(self) -> Dict[str, Tensor]:
        """The test-time gates ``1[l > 0]``, whatever the module's mode (merging uses them)."""
        return {n: (l.detach() > 0).to(l.dtype) for n, l in self.logits.items()}

    def values(self) -> Dict[str, Tensor]:
        """One gate value per adapter, sampled once per forward pass of the model."""
        out = self.eval_values()
        if self.training and self.selecting and self.candidate in self.logits:
            out[self.candidate] = straight_through_gumbel_sigmoid(
                self.logits[self.candidate], self.tau
            )
        self.last_candidate_value = out.get(self.candidate) if self.candidate else None
        return out
