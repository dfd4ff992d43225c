"""Share: one shared LoRA subspace per layer for the whole stream (Share, arXiv 2602.06043).

``config`` (settings), ``basis`` (the subspace math), ``layer``, ``model``, ``plugins``,
``strategy``: the same kinds of files as every method folder.
"""

from avalanche_litelora.share.basis import (
    SubspaceMerge,
    balanced_factors,
    explained_variance_rank,
    merge_adapters,
)
from avalanche_litelora.share.layer import ShareLinear, TaskCoefficients
from avalanche_litelora.share.model import MergeReport, ShareClassifier, task_key
from avalanche_litelora.share.config import ShareConfig
from avalanche_litelora.share.plugins import ShareMergePlugin, ShareOpenTaskPlugin
from avalanche_litelora.share.strategy import ShareStrategy

__all__ = [
    "SubspaceMerge",
    "balanced_factors",
    "explained_variance_rank",
    "merge_adapters",
    "ShareLinear",
    "TaskCoefficients",
    "MergeReport",
    "ShareClassifier",
    "task_key",
    "ShareConfig",
    "ShareOpenTaskPlugin",
    "ShareMergePlugin",
    "ShareStrategy",
]
