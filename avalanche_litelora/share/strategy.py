"""``ShareStrategy``: a SupervisedTemplate with the Share plugins, built from a plain backbone."""

from __future__ import annotations

from typing import Dict, List, Optional

from avalanche.core import BasePlugin

from avalanche_litelora.adapters.config import accepts_config_keywords
from avalanche_litelora.share.config import ShareConfig
from avalanche_litelora.share.model import MergeReport, ShareClassifier
from avalanche_litelora.training.adapter_strategy import AdapterStrategy
from avalanche_litelora.share.plugins import ShareMergePlugin, ShareOpenTaskPlugin
from avalanche_litelora.registry import register


@register
@accepts_config_keywords
class ShareStrategy(AdapterStrategy):
    """Share: one shared LoRA subspace per layer, a few coefficients per task.

    The first experience trains a rank-``rank`` adapter that seeds the bases. Every later
    experience trains its task's coefficients (width ``pseudo_rank``) over the frozen
    basis plus ``temporary_vectors`` trainable extra vectors; after each experience every
    task's adapter is rebuilt, an SVD gives the new basis (``k`` vectors, or enough to keep
    ``explained_variance`` of the energy) and all coefficients are re-projected onto it.
    Task-incremental: inference uses each sample's Avalanche task label. Runs under
    torchrun like the LoRA strategies: every plugin must declare ``supports_distributed``,
    and every rank evaluates (and ends with) the same model.

    :param model: a plain backbone (wired here: LoRA layers, multi-head), or a ready
        :class:`ShareClassifier`, whose own rank, targets, head and unknown-task rule apply.
    :param config: a :class:`~avalanche_litelora.share.config.ShareConfig`, or its fields as
        keywords (``rank``, ``pseudo_rank``, ``explained_variance``, ...).
    Every other keyword goes to ``SupervisedTemplate``.
    """

    model_class = ShareClassifier
    config_class = ShareConfig
    method_name = "Share"
    scenarios = ("task_incremental",)

    def _method_plugins(self, config: ShareConfig) -> List[BasePlugin]:
        return [
            ShareOpenTaskPlugin(pseudo_rank=config.pseudo_rank, temporary_vectors=config.temporary_vectors),
            ShareMergePlugin(explained_variance=config.explained_variance, k=config.k),
        ]

    # Read-outs, straight from the model (``adapter_model``, the base strategy's).
    @property
    def share_model(self) -> ShareClassifier:
        """Deprecated name of :attr:`adapter_model`."""
        return self._former_accessor("share_model")

    def basis_sizes(self) -> Dict[str, int]:
        return self.adapter_model.basis_sizes()

    def per_task_lora_parameter_count(self, n_tasks: Optional[int] = None) -> int:
        return self.adapter_model.per_task_lora_parameter_count(n_tasks)

    def parameter_ratio(self) -> float:
        return self.adapter_model.parameter_ratio()

    def reconstruction_errors(self) -> List[Dict[int, float]]:
        return self.adapter_model.reconstruction_errors()

    @property
    def merge_reports(self) -> List[MergeReport]:
        return list(self.adapter_model.merge_reports)
