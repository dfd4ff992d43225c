"""The LoRA bank's lifecycle as Avalanche plugins, one job each, in the order they run:
open a candidate, select (its gate), prune it if closed, freeze the bank."""

from avalanche_litelora.lora.plugins.candidate import OpenCandidatePlugin
from avalanche_litelora.lora.plugins.freeze import FreezeBankPlugin
from avalanche_litelora.lora.plugins.merge import MergedEvalPlugin
from avalanche_litelora.lora.plugins.prune import PruneClosedCandidatePlugin
from avalanche_litelora.lora.plugins.selection import GateSelectionPlugin
from avalanche_litelora.lora.plugins.task_routing import OpenTaskAdapterPlugin

__all__ = [
    "OpenCandidatePlugin",
    "GateSelectionPlugin",
    "PruneClosedCandidatePlugin",
    "FreezeBankPlugin",
    "MergedEvalPlugin",
    "OpenTaskAdapterPlugin",
]
