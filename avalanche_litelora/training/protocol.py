"""What the package asks of a plugin beyond Avalanche's callbacks, declared in one place.

Every hook is optional (a user's own plugin or Avalanche's defines none of them), so the
contract is a :class:`typing.Protocol` for readers and type checkers, and the package calls
the hooks only through the functions here, never through its own ``getattr``.
The strategies' own plugins also declare their :attr:`LifecyclePlugin.lifecycle_step`, and
:func:`check_lifecycle_order` refuses a list that runs them out of order.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional, Protocol


class LifecyclePlugin(Protocol):
    """The optional hooks, with what calls them.

    ``supports_distributed``: Avalanche's flag; under torchrun a plugin without it is refused.
    ``runs_during_selection``: True or False to decide whether LiteLoRA's selection phase
    runs this plugin's callbacks (default: see ``training.compatibility``); during that phase
    the strategy's optimizer, data loader and plugin list are swapped for the phase's own.
    ``abort_experience(strategy)``: the guard restores the model after a failed experience;
    a plugin that swapped something of the strategy's (the selection phase) hands it back.
    ``checkpoint_state()`` / ``load_checkpoint_state(state)``: plain data saved and restored
    with a checkpoint. ``lifecycle_step``: the position of a strategy's own plugin in
    :data:`LIFECYCLE_STEPS`.
    """

    supports_distributed: bool
    runs_during_selection: bool
    lifecycle_step: str

    def abort_experience(self, strategy) -> None: ...

    def checkpoint_state(self) -> Dict[str, Any]: ...

    def load_checkpoint_state(self, state: Dict[str, Any]) -> None: ...


#: The order of a strategy's own plugins: the guard snapshots before the adapter opens, the
#: selection judges the opened candidate, pruning acts on its verdict, and closing the experience
#: (freezing the bank, merging Share's subspace) comes last.
LIFECYCLE_STEPS = ("guard", "open", "select", "prune", "close")


def supports_distributed(plugin) -> bool:
    return bool(getattr(plugin, "supports_distributed", False))


def runs_during_selection(plugin, default: bool) -> bool:
    """The plugin's own ``runs_during_selection``, else ``default``."""
    return getattr(plugin, "runs_during_selection", default) is True


def abort_experience(plugin, strategy) -> None:
    if hasattr(plugin, "abort_experience"):
        plugin.abort_experience(strategy)


def checkpoint_state(plugin) -> Optional[Dict[str, Any]]:
    """The plugin's ``checkpoint_state()``, or None for a plugin without one."""
    if callable(getattr(plugin, "checkpoint_state", None)):
        return plugin.checkpoint_state()
    return None


def load_checkpoint_state(plugin, state: Dict[str, Any]) -> None:
    plugin.load_checkpoint_state(state)


def check_lifecycle_order(plugins: Iterable) -> None:
    """Refuse a strategy's own plugin list whose lifecycle steps run out of order."""
    steps = [(type(p).__name__, getattr(p, "lifecycle_step", None)) for p in plugins]
    positions = [(name, LIFECYCLE_STEPS.index(step)) for name, step in steps if step is not None]
    for (before, a), (after, b) in zip(positions, positions[1:]):
        if b < a:
            raise RuntimeError(
                f"{after} ({LIFECYCLE_STEPS[b]}) comes after {before} ({LIFECYCLE_STEPS[a]}): a strategy's "
                f"plugins run in the order {', '.join(LIFECYCLE_STEPS)}"
            )
