"""Plugins that cannot work with a frozen, banked model, refused when the strategy is built.

Called by the LoRA and Share strategies' ``__init__`` before the backbone is wired, so a
combination that cannot make sense fails there, naming the plugin and why, with the user's
model untouched, and never halfway through a stream.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, Optional

from avalanche.training.plugins import (
    CWRStarPlugin,
    EarlyStoppingPlugin,
    EWCPlugin,
    FromScratchTrainingPlugin,
    LRSchedulerPlugin,
    MASPlugin,
    RWalkPlugin,
    SynapticIntelligencePlugin,
)

from avalanche_litelora.adapters.access import unwrap_ddp
from avalanche_litelora.adapters.model import AdapterModel
from avalanche_litelora.training import protocol


class IncompatiblePluginError(ValueError):
    """A plugin whose job contradicts the frozen backbone and the adapter bank."""


def _is_bank_model(model) -> bool:
    return isinstance(model, AdapterModel)


def _cwr_star_reason(plugin, model) -> Optional[str]:
    if getattr(plugin, "model", None) is not model or not _is_bank_model(model):
        return (
            "it keeps the model it was built with, and the strategy trains a new model around "
            "that backbone, so CWR* would consolidate a classifier nothing trains"
        )
    if plugin.freeze_remaining_model:
        return "with freeze_remaining_model=True it freezes every layer but the classifier, the adapters included"
    return None


#: Plugin class -> why it cannot work here (or None when the instance's settings are fine).
REFUSED: Dict[type, Callable[[object, object], Optional[str]]] = {
    FromScratchTrainingPlugin: lambda plugin, model: (
        "it resets every parameter to its initial value before each experience, so the bank's "
        "frozen adapters and the head would be erased, and nothing learned would be kept"
    ),
    CWRStarPlugin: _cwr_star_reason,
}


def check_plugins(plugins: Iterable, model, method: str, config=None) -> None:
    """Refuse the plugins in :data:`REFUSED`, and those the strategy's ``config`` rules out,
    before ``model`` (the one given to the strategy) is wired into a bank.

    :param method: the strategy's name, for the message.
    :raises IncompatiblePluginError: naming the plugin and the reason.
    """
    model = unwrap_ddp(model)
    for plugin in plugins:
        for cls, reason_for in REFUSED.items():
            reason = reason_for(plugin, model) if isinstance(plugin, cls) else None
            if reason:
                raise IncompatiblePluginError(f"{type(plugin).__name__} cannot be used with {method}: {reason}")
        if isinstance(plugin, SynapticIntelligencePlugin) and getattr(config, "boundary", None) == "rescale":
            raise IncompatiblePluginError(
                f"SynapticIntelligencePlugin cannot be used with {method} and boundary='rescale': the "
                "first adapter's magnitude does not train in the first experience and trains from the "
                "second on, and SI meets it at the end of the first without having registered it "
                "(KeyError); pass boundary='preserve'")


#: Plugins whose callbacks account for the weights that train: they are skipped while only
#: LiteLoRA's gate logit trains (SI and RWalk would meet a tensor they never registered,
#: a scheduler would step the phase's own optimizer's schedule, early stopping could
#: restore a state in the middle of the decision; EWC's and MAS's penalties are constant).
SKIPPED_DURING_SELECTION = (
    SynapticIntelligencePlugin,
    RWalkPlugin,
    EWCPlugin,
    MASPlugin,
    LRSchedulerPlugin,
    EarlyStoppingPlugin,
)


def runs_during_selection(strategy) -> list:
    """The plugins whose callbacks LiteLoRA's selection phase runs.

    Every plugin but those in :data:`SKIPPED_DURING_SELECTION`: rehearsal and generative
    replay, distillation, metrics, a user's own plugins. A plugin decides for itself with a
    ``runs_during_selection`` attribute (True or False).
    """
    return [
        p for p in strategy.plugins
        if protocol.runs_during_selection(p, not isinstance(p, SKIPPED_DURING_SELECTION))
    ]
