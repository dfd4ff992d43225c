"""Share: one shared LoRA subspace per layer for the whole stream (Share, arXiv 2602.06043)."""

from avalanche_litelora.share.basis import (
    SubspaceMerge,
    balanced_factors,
    explained_variance_rank,
    merge_adapters,
)
from avalanche_litelora.share.layer import ShareLinear, TaskCoefficients
from avalanche_litelora.share.model import MergeReport, ShareClassifier, task_key

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
]
