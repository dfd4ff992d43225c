"""Plugins every adapter method uses, one lifecycle job each; usable with any SupervisedTemplate.

A method's own plugins live in its folder (:mod:`avalanche_litelora.lora.plugins`,
:mod:`avalanche_litelora.share.plugins`); the hooks they may define beyond Avalanche's are
declared in :mod:`avalanche_litelora.training.protocol`. Order: the guard first, then the
method's plugins; the loss, precision and schedule plugins go anywhere; CheckpointPlugin
writes after ``train()``.
"""

from avalanche_litelora.former_names import getattr_for as _getattr_for
from avalanche_litelora.training.plugins.autocast import AutocastPlugin
from avalanche_litelora.training.plugins.checkpoint import CheckpointPlugin
from avalanche_litelora.training.plugins.current_classes import CurrentClassesLossPlugin
from avalanche_litelora.training.plugins.guards import AdapterGuardPlugin
from avalanche_litelora.training.plugins.lr_milestones import EpochMilestonesLRPlugin

__getattr__ = _getattr_for(__name__)  # the LoRA and Share plugins exported here in 0.1.0, deprecated

__all__ = [
    "AdapterGuardPlugin",
    "AutocastPlugin",
    "CheckpointPlugin",
    "CurrentClassesLossPlugin",
    "EpochMilestonesLRPlugin",
]
