"""Train a whole stream experience by experience, evaluating and checkpointing after each.

A run killed at any point resumes from the last finished experience with
``train_stream(..., resume=True)``: the checkpoint holds the benchmark position, and the
finished experiences' evaluation results come back with it. It says, on stderr, where it
resumed and how far it is (:mod:`avalanche_litelora.progress`; ``progress=False`` or
``AVALANCHE_LITELORA_PROGRESS=0`` for silence).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from avalanche_litelora.adapters.seeded_heads import classes_of
from avalanche_litelora.checks import check_flag
from avalanche_litelora.progress import Countdown
from avalanche_litelora.training.checkpoint import _is_plain, load_checkpoint, save_checkpoint
from avalanche_litelora.training.distributed import is_main_process

#: File name of the checkpoint inside ``checkpoint_dir``.
CHECKPOINT_NAME = "checkpoint.pt"


def _stream_identity(stream) -> Dict[str, Any]:
    """What a resumed run must share with the saved one: the stream and its class order."""
    return {
        "name": getattr(stream, "name", "train_stream"),
        "classes": [classes_of(exp) for exp in stream],
    }


def _plain_results(results: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in results.items() if isinstance(k, str) and _is_plain(v)}


def _resume_line(start: int, total: int, path: Path) -> str:
    """Where a ``resume=True`` run starts, counting experiences from 1 as the progress lines do."""
    if start == 0:
        return f"no checkpoint in {path.parent}: starting at experience 1 of {total}"
    if start >= total:
        return f"resumed from {path}: all {total} experiences are already done"
    done = "experience 1" if start == 1 else f"experiences 1-{start}"
    return f"resumed at experience {start + 1} of {total} ({done} restored from {path})"


def _what_was_done(eval_streams, path: Optional[Path]) -> str:
    steps = ["trained"] + (["evaluated"] if eval_streams else []) + (["checkpointed"] if path is not None else [])
    return ", ".join(steps)


def train_stream(
    strategy,
    benchmark,
    *,
    checkpoint_dir: Optional[Union[str, os.PathLike]] = None,
    resume: bool = False,
    eval_streams: Optional[Sequence] = None,
    train_stream_name: str = "train_stream",
    progress: Optional[bool] = None,
) -> List[Dict[str, Any]]:
    """Train ``benchmark``'s training stream; after each experience evaluate, then checkpoint.

    :param strategy: any ``SupervisedTemplate`` (LiteLoRA, per-task, sequential, Share...).
    :param checkpoint_dir: folder of the checkpoint (``checkpoint.pt``); ``None``: no checkpoints.
    :param resume: continue from the checkpoint in ``checkpoint_dir`` if there is one
        (a fresh start if not). Without it, an existing checkpoint is an error, never
        silently overwritten.
    :param eval_streams: streams evaluated after every experience (default: the test stream;
        ``()``: none).
    :param train_stream_name: attribute of ``benchmark`` holding the training stream.
    :param progress: one line per experience on stderr (started; done, with the time left),
        and where a resumed run starts; ``None``: on unless ``AVALANCHE_LITELORA_PROGRESS=0``.
    :return: one dict of evaluation results per experience of the whole stream (plain values
        only), including those restored from the checkpoint.
    :raises CheckpointError: the checkpoint is corrupted or from another run configuration.
    """
    if progress is not None:
        check_flag("progress", progress)
    stream = getattr(benchmark, train_stream_name)
    if eval_streams is None:
        eval_streams = (benchmark.test_stream,)
    identity = _stream_identity(stream)
    path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    if resume and path is None:
        raise ValueError("resume=True needs a checkpoint_dir")
    results: List[Dict[str, Any]] = []
    start = 0
    if path is not None and path.exists():
        if not resume:
            raise FileExistsError(
                f"{path} already holds a checkpoint: pass resume=True to continue that run, "
                "or choose another checkpoint_dir"
            )
        extra = load_checkpoint(strategy, path, expect={"stream": identity})
        start, results = int(extra["next_experience"]), list(extra["results"])
    total = len(identity["classes"])
    countdown = Countdown("train_stream", "experience", total, progress if is_main_process() else False)
    if resume:
        countdown.note(_resume_line(start, total, path))
    for index in range(start, total):
        countdown.start(index, "training")
        strategy.train(stream[index])
        merged: Dict[str, Any] = {}
        for eval_stream in eval_streams:
            merged.update(strategy.eval(eval_stream))
        results.append(_plain_results(merged))
        if path is not None:
            save_checkpoint(
                strategy, path,
                extra={"stream": identity, "next_experience": index + 1, "results": results},
            )
        countdown.finish(index, _what_was_done(eval_streams, path))
    return results


__all__ = ["CHECKPOINT_NAME", "train_stream"]
