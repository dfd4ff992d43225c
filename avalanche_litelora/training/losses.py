"""Class-incremental losses restricted to the classes each sample competes with.

LiteLoRA (like SD-LoRA) trains a new experience's samples against that experience's
classes only: with nothing of the earlier classes in the minibatch, a plain cross-entropy
over a growing head pushes every earlier class's logit down on every new sample and nothing
pushes back. A minibatch that holds samples of earlier classes (a rehearsal buffer's, a
generator's) is different: those samples are the counterweight, so every sample of it
competes with every class seen so far, the plain cross-entropy of rehearsal. ER-ACE's
asymmetric form (Caccia et al., 2022: current samples against current classes, replayed
ones against all) was measured here first: on Split MNIST with the frozen ViT the
replayed samples push the current classes down and nothing lifts them, so the experience
just trained read 0.00-0.11 until it was itself replayed. Each sample's own class is
always allowed, so no sample ever has an infinite loss.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional, Sequence

import torch
from torch import Tensor


def keep_only_classes(logits: Tensor, classes: Iterable[int]) -> Tensor:
    """Logits with every column outside ``classes`` set to -inf (no gradient reaches them)."""
    keep = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    index = torch.as_tensor(sorted(set(int(c) for c in classes)), dtype=torch.long)
    index = index[index < logits.shape[-1]].to(logits.device)
    keep[index] = True
    return logits.masked_fill(~keep, float("-inf"))


def _column_mask(classes: Iterable[int], width: int, device) -> Tensor:
    keep = torch.zeros(width, dtype=torch.bool, device=device)
    index = torch.as_tensor(sorted(set(int(c) for c in classes)), dtype=torch.long)
    keep[index[index < width].to(device)] = True
    return keep


def restrict_per_sample(
    logits: Tensor, targets: Tensor, current: Iterable[int], seen: Iterable[int]
) -> Tensor:
    """-inf outside each sample's competitors: the current classes while every sample is of
    one of them; every class in ``seen`` (and the current ones) once any sample is not, a
    rehearsed minibatch; each sample's own class always."""
    width = logits.shape[-1]
    current_mask = _column_mask(current, width, logits.device)
    targets = targets.to(logits.device).long()
    in_range = (targets >= 0) & (targets < width)
    is_current = torch.zeros_like(targets, dtype=torch.bool)
    is_current[in_range] = current_mask[targets[in_range]]
    rehearsed = not bool(is_current.all())
    columns = _column_mask(seen, width, logits.device) | current_mask if rehearsed else current_mask
    keep = columns[None, :].expand(logits.shape[0], width).clone()
    rows = torch.nonzero(in_range, as_tuple=True)[0]
    keep[rows, targets[rows]] = True
    return logits.masked_fill(~keep, float("-inf"))


class ClassRestrictedLoss:
    """A criterion that restricts the logits per sample (:func:`restrict_per_sample`) first.

    It wraps the strategy's own criterion while the strategy trains, so everything that
    computes the training loss through ``strategy._criterion`` (the training loop, the
    selection phase, EWC's and RWalk's importances) gets the same loss, while
    ``strategy.mb_output`` stays the model's raw output for the plugins that read it
    (LwF's distillation, training accuracy). With ``enabled`` off (evaluation) or before
    an experience set the classes, it is the wrapped criterion.
    """

    def __init__(self, criterion: Callable[[Tensor, Tensor], Tensor]):
        self.criterion = criterion
        self.current: Optional[Sequence[int]] = None
        self.seen: Sequence[int] = ()
        self.enabled = True

    def set_classes(self, current: Iterable[int], seen: Iterable[int]) -> None:
        self.current = sorted({int(c) for c in current})
        self.seen = sorted({int(c) for c in seen})

    def __call__(self, logits: Tensor, targets: Tensor) -> Tensor:
        if self.enabled and self.current is not None and logits.dim() == 2:
            logits = restrict_per_sample(logits, targets, self.current, self.seen)
        return self.criterion(logits, targets)

    def __getattr__(self, name: str) -> Any:
        """Settings of the wrapped criterion (MIR sets ``reduction``) read through."""
        if name == "criterion":
            raise AttributeError(name)
        return getattr(self.criterion, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("criterion", "current", "seen", "enabled"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.criterion, name, value)
