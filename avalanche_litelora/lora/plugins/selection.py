"""After each experience's training epochs: LiteLoRA's gate-selection phase."""

from __future__ import annotations

import itertools
import math
import numbers
import warnings
from typing import Iterator, Optional

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.utils import _at_task_boundary

from avalanche_litelora._warnings import OncePerRun
from avalanche_litelora.checks import check_choice, check_count, check_real
from avalanche_litelora.adapters.layer import set_trainable
from avalanche_litelora.lora.gate import GATE_NOISES, GATE_SAMPLINGS, LAMBDA_RULES
from avalanche_litelora.lora.plugins.candidate_losses import DecisionWatch, candidate_losses
from avalanche_litelora.training.compatibility import runs_during_selection
from avalanche_litelora.training.distributed import wrap_for_training
from avalanche_litelora.lora.phases import Phase
from avalanche_litelora.adapters.access import adapter_model_of
from avalanche_litelora.adapters.seeded_heads import classes_of
from avalanche_litelora.lora.model import LoRAClassifier
from avalanche_litelora.progress import close_phase_bar, open_phase_bar
from avalanche_litelora.registry import register


#: Under the relative rule lambda is never below this share of the chance loss log(classes):
#: where the bank's loss is itself near zero (a head that fits the experience alone), a share
#: of it is noise, and a candidate must still be worth something on the task's own scale.
CHANCE_LOSS_FLOOR = 0.01


def lambda_for(lambda_sparsity: float, rule: str, loss_closed: float, n_classes: int) -> float:
    """The lambda, in nats, the selection phase weighs the candidate's gate with.

    ``"absolute"``: ``lambda_sparsity`` itself. ``"relative"``: ``lambda_sparsity`` times the
    experience's loss with the candidate closed, and at least :data:`CHANCE_LOSS_FLOOR` of
    ``log(n_classes)``.
    """
    if rule == "absolute":
        return lambda_sparsity
    # at least two classes: a one-class experience has no loss to remove, and a candidate
    # that removes nothing must still be pruned
    floor = CHANCE_LOSS_FLOOR * math.log(max(n_classes, 2)) if lambda_sparsity > 0 else 0.0
    return max(lambda_sparsity * loss_closed, floor)


class InertSelectionWarning(UserWarning):
    """A setting under which the gate cannot reach, or cannot avoid, a decision."""


def warn_if_gate_cannot_decide(init_logit: float, selection: "GateSelectionPlugin") -> None:
    """Warn when even the shortest phase cannot move the gate logit across zero.

    Adam moves the logit by at most about ``selection_lr`` a step, so a phase of ``n`` steps
    can only prune a candidate whose logit starts below ``n * selection_lr``. (A closed
    initial gate is refused by the model and the config.)
    """
    if selection.selection_epochs == 0:
        selection.warn_if_short(selection.min_selection_steps, init_logit)


class SelectionBatches:
    """The strategy's own training minibatches, cut into chunks and cycled for ``steps`` steps.

    Wrapping the loader Avalanche (or a rehearsal plugin) built, instead of building a new
    one, keeps every sample other plugins put in the minibatch (replayed ones included).
    """

    def __init__(self, loader, chunk_size: Optional[int], steps: int):
        self.loader = loader
        self.chunk_size = chunk_size
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def _chunks(self) -> Iterator:
        while True:
            produced = False
            for mbatch in self.loader:
                size = len(mbatch[0])
                step = self.chunk_size or size
                for start in range(0, size, step):
                    produced = True
                    yield [v[start:start + step] for v in mbatch]
            if not produced:
                return  # an empty loader: nothing to select on

    def __iter__(self) -> Iterator:
        return itertools.islice(self._chunks(), self.steps)


@register
class GateSelectionPlugin(SupervisedPlugin, supports_distributed=True):
    """Trains only the candidate's gate logit once an experience's training epochs are done.

    The phase runs in ``after_training_exp``, before the prune and freeze plugins decide, as
    one extra pass of Avalanche's own ``training_epoch``: every plugin's per-iteration
    callbacks run (the current-classes loss, a rehearsal buffer's samples, the non-finite
    guard), early stopping cannot skip it, and ``train_epochs`` keeps its Avalanche meaning.
    The loss is cross-entropy + lambda * L1(beta), beta being the candidate's
    straight-through noisy gate (``gate_sampling``: one sample per layer call, the L1 term
    their mean, or one per forward pass). lambda is ``lambda_sparsity`` times the
    experience's own loss with the candidate closed (``lambda_rule="relative"``), or
    ``lambda_sparsity`` nats (``"absolute"``). It has its own AdamW
    (``selection_lr``); the strategy's minibatches are cut into ``selection_mb_size`` chunks
    and cycled for ``max(min_selection_steps, selection_epochs * chunks per epoch)`` steps, so a small
    experience gets as many chances to move the logit across zero as a large one.
    The first adapter of the bank has nothing to be compared with and skips the phase.

    :param lambda_sparsity: a candidate whose gate lowers the mean loss by less than about
        lambda is closed: a share of the loss without it, or nats (``lambda_rule``).
    :param gate_noise: ``"gumbel"`` (the reference code) or ``"logistic"`` (binary concrete).
    :param gate_sampling: ``"per_call"`` (the reference code) or ``"per_forward"``.
    """

    lifecycle_step = "select"

    def __init__(
        self,
        lambda_sparsity: float = 0.4,
        selection_epochs: int = 1,
        selection_lr: float = 0.05,
        selection_mb_size: Optional[int] = None,
        min_selection_steps: int = 100,
        gate_noise: str = "gumbel",
        gate_sampling: str = "per_call",
        lambda_rule: str = "relative",
    ):
        super().__init__()
        self.lambda_sparsity = check_real("lambda_sparsity", lambda_sparsity, at_least_zero=True)
        self.lambda_rule = check_choice("lambda_rule", lambda_rule, LAMBDA_RULES)
        self.gate_sampling = check_choice("gate_sampling", gate_sampling, GATE_SAMPLINGS)
        self.selection_epochs = check_count("selection_epochs", selection_epochs, 0)
        self.selection_lr = check_real("selection_lr", selection_lr, positive=True)
        if selection_mb_size is not None:
            check_count("selection_mb_size", selection_mb_size)
        self.selection_mb_size = selection_mb_size
        self.min_selection_steps = check_count("min_selection_steps", min_selection_steps, 0)
        if selection_epochs == 0 and min_selection_steps == 0:
            raise ValueError("selection_epochs and min_selection_steps are both 0: the gate would never train")
        self.gate_noise = check_choice("gate_noise", gate_noise, GATE_NOISES)
        if self.lambda_sparsity == 0:
            warnings.warn(
                "lambda_sparsity=0: the selection phase has no sparsity term, so a candidate is "
                "pruned only if opening it raises the training loss, and the gate keeps almost "
                "every candidate that brings any benefit at all. Set the share of the "
                "experience's loss a candidate must remove (lambda_rule='relative', e.g. 0.1 to "
                "0.5), or use PerTaskLoRAStrategy to keep every adapter",
                InertSelectionWarning,
                stacklevel=2,
            )
        self._last_lambda: Optional[float] = None
        if self.lambda_rule == "relative" and self.lambda_sparsity >= 1:
            warnings.warn(
                f"lambda_sparsity={self.lambda_sparsity:g} under the relative rule asks a candidate to "
                "remove at least the experience's whole loss: every candidate is pruned",
                InertSelectionWarning,
                stacklevel=2,
            )
        #: Per judged candidate: its losses closed and open, lambda and decision.
        self.watch = DecisionWatch()
        self._once = OncePerRun()  # a warning of each kind once per run, not per experience
        self.selecting = False
        self._last_steps = 0
        self._saved = None

    @property
    def last_lambda(self) -> Optional[float]:
        """The lambda of the last selection phase, in nats (after ``lambda_rule``)."""
        return self._last_lambda

    @property
    def last_steps(self) -> int:
        """Steps of the last selection phase (0 when the experience had no candidate to judge)."""
        return self._last_steps

    def selection_steps(self, n_minibatches: int, train_mb_size: int, n_samples: Optional[int] = None) -> int:
        """How many logit updates one phase makes, for a loader of ``n_minibatches``.

        Given the experience's ``n_samples``, a partial last minibatch counts the chunks it
        really holds (the reference's count: one step per ``selection_mb_size`` samples).
        """
        chunks = math.ceil(train_mb_size / self.selection_mb_size) if self.selection_mb_size else 1
        per_epoch = n_minibatches * chunks
        if n_samples is not None and self.selection_mb_size and n_minibatches == math.ceil(n_samples / train_mb_size):
            last = n_samples - (n_minibatches - 1) * train_mb_size
            per_epoch = (n_minibatches - 1) * chunks + math.ceil(last / self.selection_mb_size)
        return max(self.min_selection_steps, self.selection_epochs * per_epoch)

    def warn_if_short(self, steps: int, logit: float) -> None:
        reach = steps * self.selection_lr
        if isinstance(logit, numbers.Real) and reach < abs(float(logit)):
            self._once.warn(
                "short",
                f"the selection phase makes {steps} steps of at most selection_lr="
                f"{self.selection_lr:g} each: the gate logit moves at most {reach:g}, less than "
                f"its distance to zero ({abs(float(logit)):g}), so no candidate can be pruned; "
                "raise min_selection_steps or selection_lr",
                InertSelectionWarning,
                stacklevel=3,
            )

    def _warn_if_lambda_decides_alone(self, loss_closed: float) -> None:
        """No candidate can lower the loss by more than the whole loss without it."""
        if self._last_lambda and self._last_lambda >= loss_closed:
            self._once.warn(
                "lambda",
                f"lambda={self._last_lambda:.3g} nats (lambda_sparsity={self.lambda_sparsity:g}, "
                f"{self.lambda_rule} rule) is at least the experience's whole loss with the candidate "
                f"closed ({loss_closed:.3g} nats): no candidate can lower the loss that much, so every "
                "one is pruned whatever it learned",
                InertSelectionWarning,
                stacklevel=3,
            )

    def after_training_exp(self, strategy, **kwargs):
        if not _at_task_boundary(strategy.experience, before=False):
            return  # an online stream selects once, after the experience's last sub-experience
        model = adapter_model_of(strategy, LoRAClassifier)
        self._last_steps = 0
        if model.candidate is None or not any(n != model.candidate for n in model.adapter_names):
            return
        if len(strategy.dataloader) == 0:
            return
        self._enter(strategy)
        try:
            strategy.training_epoch(**kwargs)
        finally:
            self.abort_experience(strategy)

    def _enter(self, strategy) -> None:
        model = adapter_model_of(strategy, LoRAClassifier)
        model.set_phase(Phase.SELECTION)
        model.gate.noise = self.gate_noise
        model.gate.sampling = self.gate_sampling
        losses = candidate_losses(strategy, model)
        classes = classes_of(strategy.experience)
        self._last_lambda = lambda_for(self.lambda_sparsity, self.lambda_rule, losses["loss_closed"], len(classes))
        self.watch.judging(model.candidate, losses, self._last_lambda,
                           train_steps=len(strategy.dataloader) * strategy.train_epochs)
        model.gate.selecting = True
        model.train()
        logit = model.gate.logits[model.candidate]
        steps = self.selection_steps(len(strategy.dataloader), strategy.train_mb_size,
                                     _length(strategy.adapted_dataset))
        self.warn_if_short(steps, float(logit.detach()))
        self._warn_if_lambda_decides_alone(losses["loss_closed"])
        self._saved = (strategy.optimizer, strategy.dataloader, strategy._stop_training)
        self._saved_plugins = strategy.plugins
        strategy.plugins = runs_during_selection(strategy)
        strategy.optimizer = torch.optim.AdamW([logit], lr=self.selection_lr, weight_decay=0.0)
        strategy.dataloader = SelectionBatches(strategy.dataloader, self.selection_mb_size, steps)
        strategy._stop_training = False  # early stopping ends the epochs, never this phase
        wrap_for_training(strategy)  # under torchrun, DDP now averages the logit's gradient
        self._last_steps = steps
        self.selecting = True
        open_phase_bar(strategy, steps, f"LiteLoRA gate selection of {model.candidate}")

    def before_backward(self, strategy, **kwargs):
        if self.selecting and self._last_lambda:
            beta = adapter_model_of(strategy, LoRAClassifier).gate.last_candidate_value
            strategy.loss = strategy.loss + self._last_lambda * beta.abs()

    def abort_experience(self, strategy) -> None:
        """Give the strategy back its optimizer and loader (also on a failed experience)."""
        if not self.selecting:
            return
        close_phase_bar(strategy)
        strategy.optimizer, strategy.dataloader, strategy._stop_training = self._saved
        strategy.plugins = self._saved_plugins
        self._saved = None
        model = adapter_model_of(strategy, LoRAClassifier)
        model.gate.selecting = False
        if model.candidate is not None:
            set_trainable([model.gate.logits[model.candidate]], False)
            self.watch.decided(model.candidate, model.gate.is_open(model.candidate))
        self.selecting = False

    def checkpoint_state(self) -> dict:
        return {"watch": self.watch.state()}

    def load_checkpoint_state(self, state: dict) -> None:
        self.watch.load(state.get("watch", []))


def _length(dataset) -> Optional[int]:
    try:
        return len(dataset)
    except TypeError:
        return None
