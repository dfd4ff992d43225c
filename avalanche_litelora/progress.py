"""What long work says while it runs, and the one switch that silences it.

A stream of experiences, the demo's parts, the harness's runs: each can take minutes to
hours on a CPU, and a run that prints nothing looks exactly like a hung one. So they say,
one line at a time on stderr, what they start and when it is done, with an estimate of the
time left from the items already done (:class:`Countdown`). LiteLoRA's selection phase,
extra to ``train_epochs``, gets a labelled bar with its number of steps on Avalanche's
``InteractiveLogger`` (:func:`open_phase_bar`), where the epochs have theirs.

For CI logs, ``AVALANCHE_LITELORA_PROGRESS=0`` turns all of it off; an explicit
``progress=True/False`` argument (``train_stream``) wins over the variable. The lines go to
stderr, so a table printed on stdout (the demo's) can be redirected to a file on its own.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Iterator, List, Optional

#: Environment variable: ``0``, ``false``, ``no`` or ``off`` silences the package's progress.
PROGRESS_ENV = "AVALANCHE_LITELORA_PROGRESS"
_OFF = {"0", "false", "no", "off"}


def progress_enabled(progress: Optional[bool] = None) -> bool:
    """``progress`` when given, else whether :data:`PROGRESS_ENV` leaves progress on (the default)."""
    if progress is not None:
        return bool(progress)
    return os.environ.get(PROGRESS_ENV, "1").strip().lower() not in _OFF


@contextmanager
def switched(enabled: bool) -> Iterator[None]:
    """Within the block, :func:`progress_enabled` answers ``enabled`` wherever it is asked
    (the variable is set, then put back): a command's ``--no-progress`` reaches the
    ``train_stream`` calls nested in it."""
    before = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = "1" if enabled else "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = before


def say(message: str, progress: Optional[bool] = None) -> None:
    """One progress line on stderr, flushed at once (a pipe or a CI log would hold it back)."""
    if progress_enabled(progress):
        print(message, file=sys.stderr, flush=True)


def format_duration(seconds: float) -> str:
    """``12.3 s``, ``4 min 05 s``, ``2 h 07 min``: as precise as a person reads a wait."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Countdown:
    """``what k of n`` for a sequence of similar items, each timed, with the time left.

    Items are counted from 1, as a person counts how far a job is; the time left is the
    mean time of the items finished in this process times the items still to do (items
    restored from a checkpoint took no time here and do not count).

    :param label: prefix of every line (``"train_stream"``, ``"demo"``, ...).
    :param what: the item's name (``"experience"``, ``"run"``).
    :param total: number of items.
    :param progress: ``None``: :data:`PROGRESS_ENV` decides.
    """

    def __init__(self, label: str, what: str, total: int, progress: Optional[bool] = None):
        self.label = label
        self.what = what
        self.total = int(total)
        self.enabled = progress_enabled(progress)
        self.durations: List[float] = []
        self._started: Optional[float] = None

    def _say(self, message: str) -> None:
        say(f"[{self.label}] {message}", self.enabled)

    def note(self, message: str) -> None:
        """A line of the same job that is not one item (a resume, a phase)."""
        self._say(message)

    def start(self, index: int, detail: str = "") -> None:
        """Item ``index`` (from 0) begins: ``[label] what k of n: detail``."""
        self._started = time.perf_counter()
        self._say(f"{self.what} {index + 1} of {self.total}" + (f": {detail}" if detail else ""))

    def finish(self, index: int, detail: str = "") -> float:
        """Item ``index`` is done: its time, and the time left; returns its duration in seconds."""
        elapsed = time.perf_counter() - self._started if self._started is not None else 0.0
        self._started = None
        self.durations.append(elapsed)
        left = self.total - (index + 1)
        estimate = f"; about {format_duration(self.time_left(left))} left" if left > 0 else ""
        extra = f" ({detail})" if detail else ""
        self._say(f"{self.what} {index + 1} of {self.total} done in {format_duration(elapsed)}{extra}{estimate}")
        return elapsed

    def time_left(self, remaining: int) -> float:
        """Mean duration of the items done here times ``remaining`` (0 before any is done)."""
        if not self.durations:
            return 0.0
        return sum(self.durations) / len(self.durations) * max(0, remaining)


def interactive_loggers(strategy) -> list:
    """The strategy's Avalanche ``InteractiveLogger`` instances (they draw its tqdm bars)."""
    from avalanche.logging import InteractiveLogger

    evaluator = getattr(strategy, "evaluator", None)
    return [lg for lg in getattr(evaluator, "loggers", ()) if isinstance(lg, InteractiveLogger)]


def open_phase_bar(strategy, total: int, description: str) -> None:
    """A labelled bar of ``total`` steps on the strategy's ``InteractiveLogger``, for a phase
    Avalanche does not know (its logger would otherwise count the phase's iterations on an
    unlabelled bar with no total, left open into the next evaluation's). It uses the
    logger's own bar (``_pbar``, Avalanche 0.6), so the phase's iterations, which the logger
    counts, fill it.

    With :data:`PROGRESS_ENV` off the bar is drawn nowhere.
    """
    from tqdm import tqdm

    for logger in interactive_loggers(strategy):
        if not (hasattr(logger, "_pbar") and callable(getattr(logger, "_end_progress", None))):
            continue  # an Avalanche whose logger draws its bars otherwise: left as it is
        logger._end_progress()  # the epochs' bar, if still open
        logger._pbar = tqdm(total=total, desc=description, leave=True, position=0, file=sys.stdout,
                            disable=not progress_enabled())


def close_phase_bar(strategy) -> None:
    """Close the bar :func:`open_phase_bar` opened (the next phase opens its own)."""
    for logger in interactive_loggers(strategy):
        if callable(getattr(logger, "_end_progress", None)):
            logger._end_progress()


__all__ = [
    "PROGRESS_ENV",
    "Countdown",
    "close_phase_bar",
    "format_duration",
    "open_phase_bar",
    "progress_enabled",
    "say",
    "switched",
]
