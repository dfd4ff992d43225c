"""Where a strategy keeps what a checkpoint saves, found the same way by every other module.

The ``torch.Generator`` attributes: capture, restore and the fingerprint must agree on
them, so they are found once, here (the model comes from
:func:`~avalanche_litelora.adapters.access.unwrap_ddp`, class names from
:mod:`avalanche_litelora.registry`). (A plugin's run state comes from its own ``checkpoint_state()``.)
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from avalanche_litelora.adapters.access import unwrap_ddp

def _generators(strategy) -> Dict[str, torch.Generator]:
    """``torch.Generator`` attributes of the strategy and its plugins, by a stable name."""
    found = {}
    owners = [("strategy", strategy)] + [(f"plugin{i}", p) for i, p in enumerate(strategy.plugins)]
    for owner_name, owner in owners:
        for attr, value in sorted(vars(owner).items()):
            if isinstance(value, torch.Generator):
                found[f"{owner_name}.{attr}"] = value
    return found
