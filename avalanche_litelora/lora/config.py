"""The LoRA bank family's settings: every bank strategy's, per-task LoRA's (SD-LoRA) and LiteLoRA's.

One dataclass per strategy, checked once in ``__post_init__``; the benchmark harness's
``configs/methods.json`` holds values of these same fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

from avalanche_litelora.adapters.config import SettingsBase
from avalanche_litelora.adapters.inject import AUTO_TARGETS
from avalanche_litelora.lora.gate import GATE_NOISES, GATE_SAMPLINGS, LAMBDA_RULES, check_init_logit
from avalanche_litelora.lora.phases import BOUNDARIES, MAGNITUDE_SCOPES


@dataclass
class LoRABankConfig(SettingsBase):
    """What every adapter-bank strategy shares.

    :param rank: LoRA rank of every adapter.
    :param target_modules: Linear module names (dotted suffixes or globs), or ``"auto"`` (the
        default): timm's fused ``qkv`` on its q and v slices, else a transformers encoder's
        ``query`` / ``value``, else every Linear and 1x1 conv outside the classifier.
    :param init_logit: initial gate logit; must be > 0 (a closed gate never trains).
    :param tau: gate temperature.
    :param task_incremental: multi-head with Avalanche task labels instead of one growing
        head with cross-entropy on the current classes.
    :param feature_dim: for a backbone that already outputs features (default: measured by
        one forward pass on the first experience).
    :param merge_for_eval: evaluate with open adapters merged into the base weights.
    """

    model_fields = ("rank", "target_modules", "task_incremental", "feature_dim", "init_logit", "tau")
    settings_of = "LoRA-bank"

    rank: int = 10
    target_modules: Union[str, Sequence[str]] = AUTO_TARGETS
    init_logit: float = 0.5
    tau: float = 1.0
    task_incremental: bool = False
    feature_dim: Optional[int] = None
    merge_for_eval: bool = True

    def __post_init__(self):
        self._count("rank", 1)
        self._targets()
        check_init_logit(self._name("init_logit"), self.init_logit)
        self._real("tau", positive=True)
        self._flag("task_incremental")
        if self.feature_dim is not None:
            self._count("feature_dim", 1)
        self._flag("merge_for_eval")


@dataclass
class HeadOnlyConfig(LoRABankConfig):
    """The head-only control: the bank's model, head and loss, but no adapter is ever opened.

    ``rank`` and ``target_modules`` only say where the (always empty) adapter slots are; the
    backbone stays exactly the pretrained one, so the control measures what the head alone
    learns on frozen features with the same budget as the adapter methods.
    """


@dataclass
class SequentialLoRAConfig(LoRABankConfig):
    """One adapter fine-tuned through the whole stream."""


@dataclass
class PerTaskLoRAConfig(LoRABankConfig):
    """SD-LoRA: one adapter per experience, all kept.

    :param train_past_magnitudes: SD-LoRA's choice (True) trains earlier adapters'
        magnitudes with each new experience; False freezes them with their adapter.
    :param magnitude_scope: ``"per_layer"``: one SD-LoRA magnitude per layer and output
        slice (measured 1.2-2.6 points of anytime accuracy above the reference's, three
        seeds: BENCHMARKS.md); ``"per_adapter"``: one per adapter, shared by every layer and
        slice (the reference code's and SD-LoRA's).
    :param boundary: ``"rescale"``: a finished adapter is normalised keeping its magnitude
        and the first magnitude does not train in the first experience (the reference
        code's); ``"preserve"``: the norms are folded in, nothing changes at the boundary.
    """

    model_fields = LoRABankConfig.model_fields + ("magnitude_scope", "boundary")
    settings_of = "per-task LoRA and LiteLoRA"

    train_past_magnitudes: bool = True
    magnitude_scope: str = "per_layer"
    boundary: str = "rescale"

    def __post_init__(self):
        super().__post_init__()
        self._flag("train_past_magnitudes")
        self._choice("magnitude_scope", MAGNITUDE_SCOPES)
        self._choice("boundary", BOUNDARIES)


@dataclass
class TaskRoutedLoRAConfig(LoRABankConfig):
    """One adapter per task, each task's inputs through their own only."""

    task_incremental: bool = True
    merge_for_eval: bool = False  # no single merged weight serves every task

    def __post_init__(self):
        super().__post_init__()
        if self.task_incremental is not True:
            self._fail("task_incremental", "True: task routing needs task labels")


@dataclass
class LiteLoRAConfig(PerTaskLoRAConfig):
    """LiteLoRA: per-task LoRA whose candidate must earn its place in a selection phase.

    :param lambda_sparsity: weight of the L1 penalty on the candidate's gate. Under
        ``lambda_rule="relative"`` a fraction of the experience's own loss with the
        candidate closed: roughly, a candidate is kept when it removes more than this share
        of that loss. Under ``"absolute"`` in nats per sample (the reference code's).
    :param lambda_rule: ``"relative"`` or ``"absolute"`` (see ``lambda_sparsity``).
    :param selection_epochs: passes over the experience's minibatches in the selection phase.
    :param min_selection_steps: the phase makes at least this many logit updates, cycling
        the data, so a small experience reaches a decision as a large one does.
    :param selection_lr: AdamW learning rate of the gate logit.
    :param selection_mb_size: the strategy's minibatches are cut into chunks of this size
        during selection (default: uncut).
    :param gate_noise: ``"gumbel"`` (the reference code's, biased towards open) or
        ``"logistic"`` (the binary-concrete relaxation, symmetric).
    :param gate_sampling: ``"per_call"``: a fresh gate sample at every gated layer call, the
        L1 term their mean (the reference code's); ``"per_forward"``: one per forward pass.
    :param refit_steps: head refit minibatches after a pruning (0 disables).
    :param refit_lr: SGD learning rate of that refit.
    """

    settings_of = "LiteLoRA"

    lambda_sparsity: float = 0.4
    lambda_rule: str = "relative"
    selection_epochs: int = 1
    min_selection_steps: int = 100
    selection_lr: float = 0.05
    selection_mb_size: Optional[int] = None
    gate_noise: str = "gumbel"
    gate_sampling: str = "per_call"
    refit_steps: int = 50
    refit_lr: float = 0.01

    def __post_init__(self):
        super().__post_init__()
        self._real("lambda_sparsity", at_least_zero=True)
        self._count("selection_epochs", 0)
        self._count("min_selection_steps", 0)
        if self.selection_epochs == 0 and self.min_selection_steps == 0:
            raise ValueError(
                "LiteLoRAConfig.selection_epochs and min_selection_steps are both 0: the gate "
                "would never train"
            )
        self._real("selection_lr", positive=True)
        if self.selection_mb_size is not None:
            self._count("selection_mb_size", 1)
        self._choice("gate_noise", GATE_NOISES)
        self._choice("gate_sampling", GATE_SAMPLINGS)
        self._choice("lambda_rule", LAMBDA_RULES)
        self._count("refit_steps", 0)
        self._real("refit_lr", positive=True)
