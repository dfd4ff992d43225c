"""The LiteLoRA gate: one logit per adapter, shared by every wrapped layer.

In training the candidate's gate is a straight-through noisy sigmoid (hard 0/1 forward,
soft sigmoid gradient); every other gate, and every gate at evaluation, is ``1[l > 0]``.
A pruned adapter simply has no logit any more (the reference's "minus infinity").

Two noises are offered. ``"gumbel"`` is the reference code's: one Gumbel(0, 1) sample
added to the logit, whose mean (+0.577) biases the sampled gate towards open.
``"logistic"`` is the binary-concrete relaxation's ``log u - log(1 - u)``: symmetric, so
the sampled gate is open with probability ``sigmoid(l)`` exactly.

Two samplings are offered. ``"per_call"`` is the reference code's: a fresh sample at every
gated call (each output slice of each wrapped layer: 24 on ViT-B's q and v), so during
selection the candidate is open in some layers and closed in others, and the L1 term is the
mean of those samples. ``"per_forward"`` draws one sample per forward pass and pushes it to
every layer: the adapter is all on or all off (same expectation, another gradient signal).
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import Tensor, nn

from avalanche_litelora.checks import check_choice, check_real

#: The noises the candidate's gate can be sampled with (see the module docstring).
GATE_NOISES = ("gumbel", "logistic")
#: How often the candidate's gate is sampled in one forward pass (see the module docstring).
GATE_SAMPLINGS = ("per_call", "per_forward")
#: How the selection phase reads ``lambda_sparsity``: a share of the experience's own loss
#: with the candidate closed, or nats per sample (see ``GateSelectionPlugin``).
LAMBDA_RULES = ("relative", "absolute")


def check_init_logit(name: str, value) -> float:
    """A finite logit > 0: a closed gate skips the candidate in the magnitude phase, so it
    would never train and always be pruned."""
    if check_real(name, value) <= 0:
        raise ValueError(
            f"{name} must be > 0, got {value!r}: a closed gate skips the candidate in the "
            "magnitude phase, so it never trains and is always pruned (the paper uses 0.5)"
        )
    return float(value)


def gate_noise_sample(like: Tensor, noise: str) -> Tensor:
    """One noise sample shaped like ``like``: Gumbel(0, 1) or standard logistic."""
    uniform = torch.rand_like(like).clamp(1e-10, 1.0 - 1e-10)
    if noise == "gumbel":
        return -torch.log(-torch.log(uniform))
    if noise == "logistic":
        return torch.log(uniform) - torch.log1p(-uniform)
    raise ValueError(f"gate noise must be one of {GATE_NOISES}, got {noise!r}")


def straight_through_gate(logit: Tensor, tau: float, noise: str = "gumbel") -> Tensor:
    """Hard ``1[sigmoid((l + g) / tau) > 0.5]`` forward, soft sigmoid gradient backward."""
    soft = torch.sigmoid((logit + gate_noise_sample(logit, noise)) / tau)
    hard = (soft > 0.5).to(soft.dtype)
    return hard + (soft - soft.detach())  # exactly 0 or 1 forward


def straight_through_gumbel_sigmoid(logit: Tensor, tau: float) -> Tensor:
    """The reference code's gate: :func:`straight_through_gate` with Gumbel noise."""
    return straight_through_gate(logit, tau, "gumbel")


class PerCallGate:
    """The candidate's gate under ``"per_call"`` sampling: each call draws a fresh sample per
    output slice and records it, so the L1 term can average every sample of the pass."""

    def __init__(self, gate: "AdapterGate", name: str, weight: Optional[Tensor]):
        self.gate, self.name, self.weight = gate, name, weight
        self.samples = []

    def __call__(self, slices: int) -> Tensor:
        logit = self.gate.logits[self.name]
        sample = straight_through_gate(logit.expand(slices), self.gate.tau, self.gate.noise)
        self.samples.append(sample)
        return sample if self.weight is None else sample * self.weight

    def mean(self) -> Optional[Tensor]:
        return torch.cat(self.samples).mean() if self.samples else None


class AdapterGate(nn.Module):
    """Model-level gate values for the adapter bank.

    ``candidate`` names the adapter under selection: only it gets noise (``noise``: one of
    :data:`GATE_NOISES`), and only while ``selecting`` is on and the module is in training mode.
    """

    def __init__(self, tau: float = 1.0, noise: str = "gumbel", sampling: str = "per_forward"):
        super().__init__()
        self.tau = check_real("tau", tau, positive=True)
        self.noise = check_choice("gate noise", noise, GATE_NOISES)
        self.sampling = check_choice("gate sampling", sampling, GATE_SAMPLINGS)
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

    def values(self, weights: Optional[Dict[str, Tensor]] = None) -> Dict[str, object]:
        """One gate value per adapter; under selection the candidate's is sampled.

        ``"per_forward"``: one sample, here. ``"per_call"``: a :class:`PerCallGate` that
        samples at every layer call and multiplies its samples by ``weights[candidate]`` (a
        shared magnitude) itself; call :meth:`finish_forward` after the pass.
        """
        out: Dict[str, object] = dict(self.eval_values())
        if self.training and self.selecting and self.candidate in self.logits:
            if self.sampling == "per_call":
                weight = (weights or {}).get(self.candidate)
                out[self.candidate] = PerCallGate(self, self.candidate, weight)
            else:
                out[self.candidate] = straight_through_gate(self.logits[self.candidate], self.tau, self.noise)
        self.last_candidate_value = out.get(self.candidate) if self.candidate else None
        return out

    def finish_forward(self) -> None:
        """After a pass under ``"per_call"``: the L1 term's input is the mean of its samples."""
        if isinstance(self.last_candidate_value, PerCallGate):
            self.last_candidate_value = self.last_candidate_value.mean()
