"""Cost measurements: time per training step, peak memory, inference throughput."""

from __future__ import annotations

import statistics
import threading
import time
from typing import List, Optional, Tuple

import psutil
import torch
from avalanche.core import SupervisedPlugin
from avalanche.models.utils import avalanche_forward


class StepTimer(SupervisedPlugin):
    """Wall time of every training iteration, with its experience, epoch and batch size."""

    supports_distributed = True

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


@torch.no_grad()
def throughput(model, x: torch.Tensor, task_labels: torch.Tensor, batch_size: int,
               repeats: int = 5) -> float:
    """Samples per second of evaluation-mode forward passes (best of ``repeats``, after a warm-up)."""
    model.eval()

    def timed_pass() -> float:
        start = time.perf_counter()
        for i in range(0, len(x), batch_size):
            avalanche_forward(model, x[i:i + batch_size], task_labels[i:i + batch_size])
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        return time.perf_counter() - start

    timed_pass()
    return len(x) / min(timed_pass() for _ in range(repeats))


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
