"""Cost measurements: time per training step, peak memory, inference throughput.

Comparisons of costs are timed *interleaved* (:func:`interleaved_times`): every round runs
each candidate once, back to back, in an order rotated from round to round, and a ratio is
the median of the per-round ratios. On a shared machine the load drifts over minutes;
timing A for a while and then B for a while measures that drift, not A against B.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import psutil
import torch
from avalanche.core import SupervisedPlugin
from avalanche.models.utils import avalanche_forward


class StepTimer(SupervisedPlugin, supports_distributed=True):
    """Wall time of every training iteration, with its experience, epoch and batch size.

    Rank-safe under torchrun: declared with the class keyword, the way Avalanche reads it
    (``SupervisedPlugin.__init_subclass__`` overwrites a ``supports_distributed`` attribute).
    """

    def __init__(self):
        super().__init__()
        self.steps: List[Tuple[int, int, int, float]] = []
        self._start = 0.0

    def before_training_iteration(self, strategy, **kwargs):
        self._start = time.perf_counter()

    def after_training_iteration(self, strategy, **kwargs):
        if strategy.device.type == "cuda":
            torch.cuda.synchronize(strategy.device)
        self.steps.append((
            strategy.clock.train_exp_counter, strategy.clock.train_exp_epochs,
            len(strategy.mb_y), time.perf_counter() - self._start,
        ))

    def median_step_ms(self, batch_size: int, experiences=(0, 1), epochs: Optional[int] = None) -> float:
        """Median full-batch step in the given experiences (and first ``epochs`` epochs).

        Experiences 0 and 1 are where every bank strategy holds the same adapters (LiteLoRA
        has not pruned yet), so LiteLoRA and per-task LoRA steps compare like for like.
        """
        times = [
            t for exp, epoch, n, t in self.steps
            if exp in experiences and n == batch_size and (epochs is None or epoch < epochs)
        ]
        if not times:  # short experiences: fall back to every step seen
            times = [t for *_, t in self.steps]
        return 1000.0 * statistics.median(times) if times else float("nan")

    def images_per_s(self, batch_size: int, experiences=(0, 1)) -> float:
        """Training images per second of this process over the full-batch steps of the given
        experiences (every step when there are none)."""
        steps = [(n, t) for exp, _, n, t in self.steps if exp in experiences and n == batch_size] \
            or [(n, t) for *_, n, t in self.steps]
        return sum(n for n, _ in steps) / sum(t for _, t in steps) if steps else float("nan")


class PeakMemory:
    """Peak resident memory of this process while the block runs (sampled), or CUDA peak."""

    def __init__(self, device: torch.device, interval_s: float = 0.05):
        self.device = torch.device(device)
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _sample(self) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, process.memory_info().rss)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20


def _synchronize(device: Optional[torch.device]) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_times(
    calls: Mapping[str, Callable[[], object]],
    *,
    rounds: int = 5,
    warmup: int = 1,
    repeat: int = 1,
    enter: Optional[Mapping[str, Callable[[], object]]] = None,
    leave: Optional[Mapping[str, Callable[[], object]]] = None,
    device: Optional[torch.device] = None,
) -> Dict[str, List[float]]:
    """Seconds per call of each candidate, one list entry per round.

    Round ``i`` runs the candidates in their order rotated by ``i`` (A B C, B C A, C A B,
    ...), each ``repeat`` times in a row; ``enter`` / ``leave`` (per name, untimed) put a
    candidate's model in its state and back (say, merge and unmerge), so candidates may
    share one model. ``warmup`` untimed rounds come first.
    """
    names = list(calls)
    if not names:
        raise ValueError("calls is empty: give at least one candidate to time")
    for label, value in (("rounds", rounds), ("repeat", repeat)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
    enter, leave = dict(enter or {}), dict(leave or {})
    unknown = sorted((set(enter) | set(leave)) - set(names))
    if unknown:
        raise ValueError(f"enter/leave name candidates that calls lacks: {unknown}")
    times: Dict[str, List[float]] = {name: [] for name in names}
    for index in range(warmup + rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            if name in enter:
                enter[name]()
            _synchronize(device)
            start = time.perf_counter()
            for _ in range(repeat):
                calls[name]()
            _synchronize(device)
            elapsed = (time.perf_counter() - start) / repeat
            if name in leave:
                leave[name]()
            if index >= warmup:
                times[name].append(elapsed)
    return times


def paired_ratio(times: Mapping[str, Sequence[float]], numerator: str, denominator: str) -> float:
    """Median over rounds of ``numerator``'s time over ``denominator``'s in the same round."""
    pairs = list(zip(times[numerator], times[denominator]))
    if not pairs:
        raise ValueError("no rounds were timed")
    return statistics.median(a / b for a, b in pairs)


def inference_pass(model, x: torch.Tensor, task_labels: torch.Tensor, batch_size: int) -> Callable[[], None]:
    """One evaluation pass over ``x`` in minibatches of ``batch_size`` (for timing)."""

    @torch.no_grad()
    def run() -> None:
        model.eval()
        for i in range(0, len(x), batch_size):
            avalanche_forward(model, x[i:i + batch_size], task_labels[i:i + batch_size])

    return run


def interleaved_throughputs(
    models: Mapping[str, object],
    x: torch.Tensor,
    task_labels: torch.Tensor,
    batch_size: int,
    *,
    rounds: int = 5,
    enter: Optional[Mapping[str, Callable[[], object]]] = None,
    leave: Optional[Mapping[str, Callable[[], object]]] = None,
) -> Dict[str, float]:
    """Samples per second of each model's evaluation passes, timed interleaved.

    Each value is ``len(x)`` over the best pass time (the least disturbed one); a ratio
    whose spread matters is better taken from :func:`interleaved_times` + :func:`paired_ratio`.
    """
    calls = {name: inference_pass(m, x, task_labels, batch_size) for name, m in models.items()}
    times = interleaved_times(calls, rounds=rounds, enter=enter, leave=leave, device=x.device)
    return {name: len(x) / min(t) for name, t in times.items()}


def throughput(model, x: torch.Tensor, task_labels: torch.Tensor, batch_size: int,
               repeats: int = 5) -> float:
    """Samples per second of evaluation-mode forward passes (best of ``repeats``, after a warm-up).

    One model alone: to compare models, time them together with :func:`interleaved_throughputs`.
    """
    return interleaved_throughputs({"model": model}, x, task_labels, batch_size, rounds=repeats)["model"]


def sample_inputs(stream, n: int, device) -> Tuple[torch.Tensor, torch.Tensor]:
    """Up to ``n`` test inputs and their task labels, taken across the stream's experiences."""
    xs, ts = [], []
    per_exp = max(1, n // len(stream))
    for exp in stream:
        loader = torch.utils.data.DataLoader(exp.dataset, batch_size=per_exp)
        x, _, t = next(iter(loader))
        xs.append(x)
        ts.append(t)
    return torch.cat(xs)[:n].to(device), torch.cat(ts)[:n].to(device)
