"""Where a strategy keeps what a checkpoint saves, found the same way by every other module.

The unwrapped model, the class names the fingerprint compares and the ``torch.Generator``
attributes: capture, restore and the fingerprint must agree on all three, so each is defined
once, here. (A plugin's run state comes from its own ``checkpoint_state()``.)
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from avalanche_litelora.adapters.access import unwrap_ddp

def _qualname(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _generators(strategy) -> Dict[str, torch.Generator]:
    """``torch.Generator`` attributes of the strategy and its plugins, by a stable name."""
    found = {}
    owners = [("strategy", strategy)] + [(f"plugin{i}", p) for i, p in enumerate(strategy.plugins)]
    for owner_name, owner in owners:
        for attr, value in sorted(vars(owner).items()):
            if isinstance(value, torch.Generator):
                found[f"{owner_name}.{attr}"] = value
    return found
