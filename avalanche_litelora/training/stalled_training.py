"""A hint when an experience's training loss ends at chance.

A loss that ends an experience at ln k (k classes: every logit equal) means nothing was
learned beyond the class prior, and training itself raises no error. Whether it got there
from a higher start (a fresh head learns the prior in a few steps) or sat there throughout
does not matter: a user's frozen random CNN showed both. The usual causes are a setup mistake
this hint names. The strategy reads the losses its loop already computed (detached, kept
on their device: no extra forward pass, no per-iteration synchronisation) and judges them
when the experience's epochs end, before any plugin's ``after_training_exp``: LiteLoRA's
selection phase, which runs there, is never read. A hook of the strategy, not a plugin:
the plugin list is part of every checkpoint's fingerprint, and this check keeps no state a
resumed run would need.
"""

from __future__ import annotations

import math
from collections import deque
from typing import List, NamedTuple, Optional

import torch

from avalanche_litelora._warnings import OncePerRun
from avalanche_litelora.training.distributed import is_main_process
from avalanche_litelora.training.plugins.current_classes import experience_classes


class StalledTrainingWarning(UserWarning):
    """An experience's training loss ended at chance (ln of its class count)."""


#: The loss ends at chance: its last stretch's mean is at most this share below ln k (a run
#: that learns, even slowly, ends further below over a whole experience) ...
BELOW_CHANCE = 0.05
#: ... and at most this share above it (far above is divergence: another problem).
ABOVE_CHANCE = 0.1
#: Iterations in each stretch, at most (a quarter of the experience's when it has fewer).
STRETCH = 20
#: An experience with fewer iterations is not judged: too short to tell (an online stream's).
MIN_ITERATIONS = 20


class Stall(NamedTuple):
    """What an experience's loss did: its mean over the first and last stretch."""

    start: float
    end: float
    stretch: int
    iterations: int

    def chance(self, class_counts) -> Optional[int]:
        """The class count k whose ln k the end loss sits at, if any."""
        return next((k for k in class_counts
                     if k >= 2 and (1 - BELOW_CHANCE) * math.log(k) <= self.end <= (1 + ABOVE_CHANCE) * math.log(k)),
                    None)


class LossWatch:
    """The losses of one experience's training iterations: its first and last stretch."""

    def __init__(self):
        self._head: List[torch.Tensor] = []
        self._tail: deque = deque(maxlen=STRETCH)
        self._count = 0
        self._open = False
        self.once = OncePerRun()

    def open(self) -> None:
        self._head, self._count, self._open = [], 0, True
        self._tail.clear()

    def record(self, loss) -> None:
        if not self._open or not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            return
        value = loss.detach()
        if len(self._head) < STRETCH:
            self._head.append(value)
        self._tail.append(value)
        self._count += 1

    def close(self) -> Optional[Stall]:
        """Stop reading (what runs after, e.g. a selection phase, is not the experience's
        training) and summarise; None for an experience too short to judge."""
        self._open = False
        head, tail, count = self._head, list(self._tail), self._count
        self._head, self._count = [], 0
        self._tail.clear()
        if count < MIN_ITERATIONS:
            return None
        width = min(STRETCH, count // 4)
        start = float(torch.stack(head[:width]).float().mean())  # the one synchronisation
        end = float(torch.stack(tail[-width:]).float().mean())
        return Stall(start, end, width, count)


def stall_message(strategy, stall: Stall, k: int) -> str:
    """The numbers, then the usual causes with their fix."""
    rates = sorted({group.get("lr") for group in strategy.optimizer.param_groups}, key=str)
    trainable = [p for p in strategy.model.parameters() if p.requires_grad]
    held = {id(p) for group in strategy.optimizer.param_groups for p in group["params"]}
    stepped = sum(id(p) in held for p in trainable)
    return (
        f"the training loss ended experience {strategy.experience.current_experience} at chance: "
        f"{stall.start:.4f} over its first {stall.stretch} iterations, {stall.end:.4f} over its last "
        f"{stall.stretch} (of {stall.iterations}), at chance for {k} classes (ln {k} = {math.log(k):.4f}), "
        "so the model learned little or nothing beyond the class prior. The optimizer's learning rates: "
        f"{rates}; it steps {stepped} of the model's {len(trainable)} trainable tensors. Usual causes: a learning rate too low or 0 "
        "(raise lr); an optimizer over parameters that are not the model's (build it over the "
        "model given to the strategy: torch.optim.SGD(model.parameters(), lr=...)); adapters on "
        "layers that do not reach the output (set target_modules to layers the output depends "
        "on); a backbone that was never trained (random initialisation: the strategies freeze "
        "it, so its features must already tell the classes apart; start from a pretrained one); "
        "everything frozen (no tensor with requires_grad=True); labels that do not match the "
        "head (targets outside its classes, or a head of another width). Shown once per run; "
        "silence it with warnings.filterwarnings('ignore', category=StalledTrainingWarning)"
    )


def warn_if_stalled(strategy, watch: LossWatch) -> None:
    """After an experience's epochs: warn once per run if its loss ended at chance."""
    stall = watch.close()
    if stall is None or not is_main_process():
        return
    output = getattr(strategy, "mb_output", None)
    width = [output.shape[-1]] if isinstance(output, torch.Tensor) and output.dim() == 2 else []
    k = stall.chance([len(experience_classes(strategy.experience))] + width)
    if k is not None:
        watch.once.warn("stalled", stall_message(strategy, stall, k), StalledTrainingWarning, stacklevel=4)


class StalledTrainingCheckMixin:
    """Template mixin: reads each training iteration's loss, judges it when the epochs end."""

    def _loss_watch(self) -> LossWatch:
        return self.__dict__.setdefault("_stalled_training_watch", LossWatch())

    def _before_training_exp(self, **kwargs):
        self._loss_watch().open()
        super()._before_training_exp(**kwargs)

    def _after_training_iteration(self, **kwargs):
        self._loss_watch().record(self.loss)
        super()._after_training_iteration(**kwargs)

    def _after_training_exp(self, **kwargs):
        warn_if_stalled(self, self._loss_watch())  # before the plugins: a selection phase runs there
        super()._after_training_exp(**kwargs)


__all__ = ["StalledTrainingCheckMixin", "StalledTrainingWarning", "warn_if_stalled"]
