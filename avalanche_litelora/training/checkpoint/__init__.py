"""State-dict checkpoints of a running strategy: written atomically, verified before loading.

Avalanche's own ``save_checkpoint`` dills the whole strategy, which fails on this stack. This
package writes one ``torch.save``d dict of plain data instead (``weights_only``-loadable):
``"model"`` (``model.state_dict()``), ``"optimizer"``, ``"clock"``, ``"rng"``, ``"evaluator"``,
``"plugins"``, ``"extra"`` (e.g. the benchmark position), a ``"fingerprint"`` of the
configuration and a ``"checksum"`` of all of it. Loading refuses a corrupted file or another
configuration with :class:`CheckpointError` before anything in the strategy changes.
Works with any ``SupervisedTemplate`` whose model's state dict loads into a freshly built one.

One job per module: :mod:`.format` (the file: plain data, checksum, atomic write, read),
:mod:`.capture` (the strategy's state as that data, and its parts put back), :mod:`.restore`
(check everything, then load), :mod:`.fingerprint`, :mod:`.rng`, :mod:`.evaluator` (metric
history and internals), :mod:`.parts` (where those live in a strategy). This module is the
strategy-facing entry: :func:`save_checkpoint` and :class:`CheckpointMixin`, which decide
that only the main process writes (through ``DistributedHelper``, looked up here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

from avalanche.distributed import DistributedHelper

# Every name importable from the single module this package replaces, so no import changes:
# besides __all__, FORMAT, FORMAT_VERSION, PathLike and the private
# _is_plain (used by loop.py) and _digest (used by tests).
from avalanche_litelora.training.checkpoint.capture import capture_state
from avalanche_litelora.training.checkpoint.fingerprint import config_fingerprint
from avalanche_litelora.training.checkpoint.format import (
    FORMAT,
    FORMAT_VERSION,
    CheckpointError,
    PathLike,
    _digest,
    _is_plain,
    atomic_torch_save,
    read_checkpoint,
    write_payload,
)
from avalanche_litelora.training.checkpoint.restore import load_checkpoint
from avalanche_litelora.training.checkpoint.rng import capture_rng_state, restore_rng_state


def save_checkpoint(strategy, path: PathLike, *, extra: Optional[Mapping[str, Any]] = None) -> Optional[Path]:
    """Write the strategy's state to ``path`` atomically; only the main process writes.

    Call it between experiences (after ``train``/``eval``), never inside them.
    :param extra: plain data stored beside the state (e.g. the benchmark position).
    :return: the path written, or ``None`` on a non-main distributed process.
    """
    if not DistributedHelper.is_main_process:
        return None
    return write_payload(capture_state(strategy, extra), path)


class CheckpointMixin:
    """``save_checkpoint`` / ``resume`` methods for a ``SupervisedTemplate`` subclass."""

    def save_checkpoint(self, path: PathLike, *, extra: Optional[Mapping[str, Any]] = None) -> Optional[Path]:
        """Write this strategy's state to ``path`` (see :func:`save_checkpoint`)."""
        return save_checkpoint(self, path, extra=extra)

    def resume(self, path: PathLike) -> int:
        """Restore the state saved at ``path``; returns the number of finished experiences."""
        return load_checkpoint(self, path)["experiences_done"]


__all__ = [
    "CheckpointError",
    "CheckpointMixin",
    "atomic_torch_save",
    "capture_rng_state",
    "capture_state",
    "config_fingerprint",
    "load_checkpoint",
    "read_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]
