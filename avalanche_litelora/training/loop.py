"""Train a whole stream experience by experience, evaluating and checkpointing after each.

A run killed at any point resumes from the last finished experience with
``train_stream(..., resume=True)``: the checkpoint holds the benchmark position, and the
finished experiences' evaluation results come back with it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from avalanche_litelora.training.checkpoint import _is_plain, load_checkpoint, save_checkpoint

#: File name of the checkpoint inside ``checkpoint_dir``.
CHECKPOINT_NAME = "checkpoint.pt"


def _stream_identity(stream) -> Dict[str, Any]:
    """What a resumed run must share with the saved one: the stream and its class order."""
    return {
        "name": getattr(stream, "name", "train_stream"),
        "classes": [sorted(int(c) for c in exp.classes_in_this_experience) for exp in stream],
    }


def _plain_results(results: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in results.items() if isinstance(k, str) and _is_plain(v)}


def train_stream(
    strategy,
    benchmark,
    *,
    checkpoint_dir: Optional[Union[str, os.PathLike]] = None,
    resume: bool = False,
    eval_streams: Optional[Sequence] = None,
    train_stream_name: str = "train_stream",
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
    :return: one dict of evaluation results per experience of the whole stream (plain values
        only), including those restored from the checkpoint.
    :raises CheckpointError: the checkpoint is corrupted or from another run configuration.
    """
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
    for index in range(start, len(identity["classes"])):
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
    return results


__all__ = ["CHECKPOINT_NAME", "train_stream"]
