"""Share's settings, checked once in ``__post_init__``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

from avalanche_litelora.adapters.config import SettingsBase
from avalanche_litelora.adapters.inject import AUTO_TARGETS
from avalanche_litelora.share.basis import validate_basis_choice
from avalanche_litelora.share.model import UNKNOWN_TASK_CHOICES


@dataclass
class ShareConfig(SettingsBase):
    """Share: one shared low-rank subspace per layer, tiny per-task coefficients.

    :param rank: rank of the first adapter; also the rank of the per-task-LoRA equivalent.
    :param pseudo_rank: p, width of each later task's coefficients.
    :param temporary_vectors: phi, extra basis vectors trained with each later task.
    :param explained_variance: energy threshold for k (default 0.6 when ``k`` is None).
    :param k: fixed basis size instead of a threshold.
    :param target_modules: as for :class:`~avalanche_litelora.lora.config.LoRABankConfig`.
    :param feature_dim: as for :class:`~avalanche_litelora.lora.config.LoRABankConfig`.
    :param unknown_task: ``"backbone"`` (a task without coefficients runs through the bare
        backbone, as evaluation of future experiences needs) or ``"error"``.
    """

    model_fields = ("rank", "target_modules", "feature_dim", "unknown_task")
    settings_of = "Share"

    rank: int = 10
    pseudo_rank: int = 1
    temporary_vectors: int = 2
    explained_variance: Optional[float] = None
    k: Optional[int] = None
    target_modules: Union[str, Sequence[str]] = AUTO_TARGETS
    feature_dim: Optional[int] = None
    unknown_task: str = "backbone"

    def __post_init__(self):
        self._count("rank", 1)
        self._count("pseudo_rank", 1)
        self._count("temporary_vectors", 1)
        validate_basis_choice(self.explained_variance, self.k)
        self._targets()
        if self.feature_dim is not None:
            self._count("feature_dim", 1)
        self._choice("unknown_task", UNKNOWN_TASK_CHOICES)
