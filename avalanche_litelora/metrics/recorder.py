"""The accuracy matrix of a run, recorded from the strategy's own evaluation passes.

Row ``i`` is the accuracy on each evaluated experience after training experience ``i``
(``i`` counts finished training experiences, from 0). What counts as row ``i``:

- only evaluations of one stream (``test_stream`` by default; Avalanche names the stream
  object ``test`` and its metrics ``test_stream``, both spellings work): the default ``eval_streams``
  of ``train()`` evaluates the *training* experience and is ignored;
- only evaluations *between* training experiences. Periodic evaluation inside an
  experience (``eval_every > 0``) would otherwise plot a half-trained model at the
  experience's x; ``eval_every=0``'s end-of-experience evaluation counts (Avalanche runs it
  after every other ``after_training_exp`` callback, so after pruning and freezing);
- a row is *complete* once it holds every experience trained so far; evaluating future
  experiences too (the whole test stream) only adds columns.

Columns are experience indices as integers, so 12 experiences sort 0, 1, ..., 11.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue
from avalanche.evaluation.metrics import Accuracy


class AccuracyMatrixRecorder:
    """Feeds on template callbacks; a metric calls it and asks for the rows."""

    def __init__(self, stream: str = "test_stream"):
        if not isinstance(stream, str) or not stream:
            raise ValueError(f"stream must be a stream name such as 'test_stream', got {stream!r}")
        self.stream = stream
        #: Experience index of each finished training experience, in training order.
        self.trained: List[int] = []
        #: ``rows[i][j]``: accuracy on experience ``j`` after training experience ``i``.
        self.rows: Dict[int, Dict[int, float]] = {}
        self._inside_experience = False
        self._accuracy = Accuracy()
        self._current_exp: Optional[int] = None
        self._published: List[int] = []  # a list: checkpoints restore metric state with a restricted unpickler

    # ------------------------------------------------------------ callbacks
    def before_training_exp(self, strategy) -> None:
        self._inside_experience = True

    def after_training_exp(self, strategy) -> None:
        self._inside_experience = False
        self.trained.append(int(strategy.experience.current_experience))

    def before_eval_exp(self, strategy) -> None:
        self._current_exp = None
        if self._counts(strategy):
            self._current_exp = int(strategy.experience.current_experience)
            self._accuracy.reset()

    def after_eval_iteration(self, strategy) -> None:
        if self._current_exp is not None:
            self._accuracy.update(strategy.mb_output, strategy.mb_y)

    def after_eval_exp(self, strategy) -> None:
        if self._current_exp is not None:
            row = self.rows.setdefault(self.step, {})
            row[self._current_exp] = float(self._accuracy.result())
            self._current_exp = None

    def new_complete_row(self) -> Optional[int]:
        """After an evaluation: the step whose row just became complete, once per step."""
        step = self.step
        if step < 0 or step in self._published or not self.is_complete(step):
            return None
        self._published.append(step)
        return step

    # ------------------------------------------------------------ queries
    @property
    def step(self) -> int:
        """Index of the last finished training experience (-1 before the first)."""
        return len(self.trained) - 1

    def _counts(self, strategy) -> bool:
        if self._inside_experience or self.step < 0:
            return False
        return _bare(strategy.experience.origin_stream.name) == _bare(self.stream)

    def is_complete(self, step: int) -> bool:
        row = self.rows.get(step, {})
        return all(j in row for j in self.trained[: step + 1])

    def history_complete(self, step: int) -> bool:
        """Every row up to ``step`` complete: forgetting and anytime accuracy are defined."""
        return all(self.is_complete(i) for i in range(step + 1))

    def seen_matrix(self, step: int) -> List[List[float]]:
        """Square matrix over the experiences trained up to ``step``, in training order.

        Exactly the input of :mod:`avalanche_litelora.metrics.accuracy_matrix`'s helpers;
        cells of rows that were never evaluated are NaN (see :meth:`history_complete`).
        """
        seen = self.trained[: step + 1]
        return [[self.rows.get(i, {}).get(j, float("nan")) for j in seen] for i in range(step + 1)]

    def full_matrix(self, step: int) -> Tuple[List[int], List[List[float]]]:
        """Every evaluated experience (numeric order) as columns, rows 0..step; NaN if not evaluated."""
        columns = sorted({j for i in range(step + 1) for j in self.rows.get(i, {})})
        values = [[self.rows.get(i, {}).get(j, float("nan")) for j in columns] for i in range(step + 1)]
        return columns, values


class RecordedMatrixMetric(PluginMetric):
    """A PluginMetric fed by an :class:`AccuracyMatrixRecorder`: the callbacks it needs, once.

    After each evaluation that completes a row of the matrix, :meth:`values_at` gives the
    scalars to emit at ``x = step`` (the row's training experience); :meth:`result` is the
    last of them.
    """

    def __init__(self, stream: str = "test_stream"):
        super().__init__()
        self.recorder = AccuracyMatrixRecorder(stream)
        self._last: dict = {}

    def values_at(self, step: int) -> dict:
        """The scalars, by tag, once row ``step`` of the matrix is complete."""
        raise NotImplementedError

    def result(self) -> dict:
        """The values emitted last, by tag."""
        return dict(self._last)

    def reset(self) -> None:
        self._last = {}

    def after_eval(self, strategy) -> List[MetricValue]:
        step = self.recorder.new_complete_row()
        if step is None:
            return []
        self._last = self.values_at(step)
        return [MetricValue(self, name, value, step) for name, value in self._last.items()]

    def before_training_exp(self, strategy):
        self.recorder.before_training_exp(strategy)

    def after_training_exp(self, strategy):
        self.recorder.after_training_exp(strategy)

    def before_eval_exp(self, strategy):
        self.recorder.before_eval_exp(strategy)

    def after_eval_iteration(self, strategy):
        self.recorder.after_eval_iteration(strategy)

    def after_eval_exp(self, strategy):
        self.recorder.after_eval_exp(strategy)


def _bare(stream: str) -> str:
    return stream[: -len("_stream")] if stream.endswith("_stream") else stream
