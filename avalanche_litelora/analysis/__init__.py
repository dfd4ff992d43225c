"""Redundancy analysis of an adapter bank: how much do the adapters of different tasks overlap?

``python -m avalanche_litelora.analysis <checkpoint-or-state-dict> [--side input] [--out DIR] [--tensorboard DIR]``
"""

from avalanche_litelora.analysis.redundancy import (
    RedundancyReport,
    UnitRedundancy,
    analyse_bank,
    analyse_model,
    analyse_state_dict,
    bank_from_state_dict,
    captured_energy_fraction,
    energy_rank,
    low_rank_svd,
    subspace_overlap,
)
from avalanche_litelora.analysis.report import (
    format_table,
    load_state_dict_file,
    log_to_tensorboard,
    save_pngs,
)

__all__ = [
    "RedundancyReport",
    "UnitRedundancy",
    "analyse_bank",
    "analyse_model",
    "analyse_state_dict",
    "bank_from_state_dict",
    "captured_energy_fraction",
    "energy_rank",
    "low_rank_svd",
    "subspace_overlap",
    "format_table",
    "load_state_dict_file",
    "log_to_tensorboard",
    "save_pngs",
]
