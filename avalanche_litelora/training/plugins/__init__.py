"""LiteLoRA as Avalanche plugins, one lifecycle job each; usable with any SupervisedTemplate.

Order matters and is the order below: guard, open, (select), (prune), (freeze);
the loss and evaluation plugins go anywhere; CheckpointPlugin writes after train().
"""

from avalanche_litelora.training.plugins.candidate import OpenCandidatePlugin
from avalanche_litelora.training.plugins.checkpoint import CheckpointPlugin
from avalanche_litelora.training.plugins.current_classes import CurrentClassesLossPlugin
from avalanche_litelora.training.plugins.freeze import FreezeBankPlugin
from avalanche_litelora.training.plugins.guards import AdapterGuardPlugin, BankGuardPlugin, ShareGuardPlugin
from avalanche_litelora.training.plugins.merge import MergedEvalPlugin
from avalanche_litelora.training.plugins.prune import PruneClosedCandidatePlugin
from avalanche_litelora.training.plugins.selection import GateSelectionPlugin
from avalanche_litelora.training.plugins.share import (
    ShareMergePlugin,
    ShareOpenTaskPlugin,
)

__all__ = [
    "AdapterGuardPlugin",
    "BankGuardPlugin",  # former name of AdapterGuardPlugin
    "OpenCandidatePlugin",
    "GateSelectionPlugin",
    "PruneClosedCandidatePlugin",
    "FreezeBankPlugin",
    "CurrentClassesLossPlugin",
    "MergedEvalPlugin",
    "CheckpointPlugin",
    "ShareGuardPlugin",  # former name of AdapterGuardPlugin
    "ShareOpenTaskPlugin",
    "ShareMergePlugin",
]
