"""After training: write a resumable checkpoint of the strategy (main process only)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from avalanche.core import SupervisedPlugin

from avalanche_litelora.training.checkpoint import save_checkpoint
from avalanche_litelora.registry import register


@register
class CheckpointPlugin(SupervisedPlugin, supports_distributed=True):
    """Saves the strategy with :func:`~avalanche_litelora.training.checkpoint.save_checkpoint`.

    Avalanche runs the evaluator and the clock after the plugins given to a strategy, and a
    checkpoint must include their end-of-experience updates; so the plugin writes at the end
    of every ``strategy.train(...)`` call, which in Avalanche's usual loop (one experience
    per call) is after every experience. Resume with ``strategy.resume(path)`` (or
    :func:`~avalanche_litelora.training.checkpoint.load_checkpoint`), which returns the
    number of finished experiences to skip. To keep the evaluation that follows each
    experience too, use :func:`avalanche_litelora.training.loop.train_stream`.
    """

    def __init__(self, path: Union[str, Path]):
        super().__init__()
        self.path = Path(path)
        self._last_saved: Optional[Path] = None

    @property
    def last_saved(self) -> Optional[Path]:
        """Where the last checkpoint was written (None before the first, or off the main process)."""
        return self._last_saved

    def after_training(self, strategy, **kwargs):
        self._last_saved = save_checkpoint(strategy, self.path)
