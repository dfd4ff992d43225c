"""``ShareStrategy``: a SupervisedTemplate with the Share plugins, built from a plain backbone."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from avalanche.core import BasePlugin
from avalanche.training.templates import SupervisedTemplate
from torch import nn
from torch.nn import CrossEntropyLoss
from torch.optim import Optimizer

from avalanche_litelora.config import ShareConfig, accepts_config_keywords
from avalanche_litelora.models.heads import classifier_parameters, find_classifier
from avalanche_litelora.share.model import MergeReport, ShareClassifier
from avalanche_litelora.training.checkpoint import CheckpointMixin
from avalanche_litelora.training.compatibility import check_plugins
from avalanche_litelora.training.distributed import RankSafeTemplateMixin, refuse_unsupported_plugins
from avalanche_litelora.training.first_experience import HeadFromFirstExperienceMixin
from avalanche_litelora.training.plugins.guards import AdapterGuardPlugin
from avalanche_litelora.training.plugins.share import (
    ShareMergePlugin,
    ShareOpenTaskPlugin,
    share_model,
)


@accepts_config_keywords
class ShareStrategy(HeadFromFirstExperienceMixin, CheckpointMixin, RankSafeTemplateMixin, SupervisedTemplate):
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
    :param config: a :class:`~avalanche_litelora.config.ShareConfig`, or its fields as
        keywords (``rank``, ``pseudo_rank``, ``explained_variance``, ...).
    Every other keyword goes to ``SupervisedTemplate``.
    """

    config_class = ShareConfig

    def __init__(
        self,
        *,
        model: nn.Module,
        optimizer: Optimizer,
        config: Optional[ShareConfig] = None,
        criterion=None,
        plugins: Optional[Sequence[BasePlugin]] = None,
        **kwargs,
    ):
        config, base_kwargs = ShareConfig.from_keywords(config, kwargs)
        #: The settings, validated (a ``dataclasses`` instance: ``asdict(strategy.config)``).
        self.config = config
        share_plugins = [
            AdapterGuardPlugin(),
            ShareOpenTaskPlugin(pseudo_rank=config.pseudo_rank, temporary_vectors=config.temporary_vectors),
            ShareMergePlugin(explained_variance=config.explained_variance, k=config.k),
        ]
        # SupervisedTemplate rejects unknown keywords before the backbone is touched.
        super().__init__(
            model=model,
            optimizer=optimizer,
            criterion=criterion if criterion is not None else CrossEntropyLoss(),
            plugins=share_plugins + list(plugins or []),
            **base_kwargs,
        )
        refuse_unsupported_plugins(self.plugins)  # under torchrun; the backbone is untouched
        check_plugins(self.plugins, model, "ShareStrategy")  # the backbone is still untouched
        if isinstance(model, ShareClassifier):
            self.model = model
        else:
            how, _ = find_classifier(model, config.feature_dim)
            replaced = {k: id(v) for k, v in classifier_parameters(model, how).items()}
            self.model = ShareClassifier(
                model,
                rank=config.rank,
                target_modules=config.target_modules,
                feature_dim=config.feature_dim,
                unknown_task=config.unknown_task,
            )
            # the head joins the optimizer group of the classifier it replaced
            self.model.replaced_classifier_ids = replaced

    # Read-outs, straight from the model.
    @property
    def share_model(self) -> ShareClassifier:
        return share_model(self)

    @property
    def lora_model(self) -> ShareClassifier:
        """Same as :attr:`share_model`, under the LoRA strategies' name."""
        return share_model(self)

    def basis_sizes(self) -> Dict[str, int]:
        return self.share_model.basis_sizes()

    def adapter_parameter_count(self) -> int:
        return self.share_model.adapter_parameter_count()

    def per_task_lora_parameter_count(self, n_tasks: Optional[int] = None) -> int:
        return self.share_model.per_task_lora_parameter_count(n_tasks)

    def parameter_ratio(self) -> float:
        return self.share_model.parameter_ratio()

    def reconstruction_errors(self) -> List[Dict[int, float]]:
        return self.share_model.reconstruction_errors()

    @property
    def merge_reports(self) -> List[MergeReport]:
        return list(self.share_model.merge_reports)
