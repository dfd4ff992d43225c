"""A real crash: SIGKILL a training process mid-write and mid-experience, resume, lose nothing.

The resumed run must end bitwise where an uninterrupted run with the same seed ends: same
evaluation results and metric history (forgetting and BWT included), same gate decisions,
same model state, same clock, same random stream afterwards. All on CPU, one thread.

Each run is its own process (``resumable_run.py``), forked from a multiprocessing
forkserver that has imported Avalanche once: SIGKILL ends it as it would any process.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from pathlib import Path

import pytest

import resumable_run
from avalanche_litelora.training.checkpoint import read_checkpoint

pytestmark = pytest.mark.slow  # kills and resumes a real run in a subprocess

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(
    ["avalanche_litelora", "avalanche.evaluation.metrics", "sklearn.datasets"]
)


def _start(*argv: str):
    parent, child = _CONTEXT.Pipe(duplex=False)
    proc = _CONTEXT.Process(target=resumable_run.run_forwarding_output, args=(child, list(argv)))
    proc.start()
    child.close()
    return proc, parent


def _read_until(proc, conn, marker: str) -> str:
    """The child's output up to the line starting with ``marker`` (or its end)."""
    seen = []
    while True:
        if not conn.poll(600):
            pytest.fail("the child printed nothing for 600 s:\n" + "".join(seen)[-3000:])
        try:
            seen.append(conn.recv())
        except EOFError:
            pytest.fail(f"the child ended (exit code {proc.exitcode}) before {marker!r}:\n"
                        + "".join(seen)[-3000:])
        if marker in "".join(seen):
            return "".join(seen)


def _run(tmp_path: Path, name: str, *argv: str) -> dict:
    out = tmp_path / f"{name}.json"
    proc, conn = _start("--out", str(out), *argv)
    _read_until(proc, conn, "RUN-FINISHED")
    proc.join(120)
    assert proc.exitcode == 0
    return json.loads(out.read_text())


def _kill_at(marker: str, *argv: str) -> str:
    """Start a run, SIGKILL it as soon as it prints ``marker`` (it stalls there)."""
    proc, conn = _start("--out", os.devnull, *argv)
    try:
        output = _read_until(proc, conn, marker)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.join(60)
        conn.close()
    assert proc.exitcode == -signal.SIGKILL, output[-3000:]
    return output


def _temporaries(directory: Path):
    return sorted(directory.glob(".checkpoint.pt.tmp-*"))


def test_killed_in_a_write_and_in_an_experience_resumes_to_the_uninterrupted_result(tmp_path):
    reference = _run(tmp_path, "reference", "--checkpoint-dir", str(tmp_path / "reference"))
    ckpt_dir = tmp_path / "run"
    checkpoint = ckpt_dir / "checkpoint.pt"

    # 1. Killed while writing the checkpoint that follows experience 1.
    output = _kill_at("CHECKPOINT-WRITE-PAUSED", "--checkpoint-dir", str(ckpt_dir),
                      "--stall-in-write-after", "1")
    partial = _temporaries(ckpt_dir)
    assert len(partial) == 1 and partial[0].stat().st_size > 0, output[-2000:]
    previous = read_checkpoint(checkpoint)  # the last good one: after experience 0
    assert previous["extra"]["next_experience"] == 1
    assert previous["experiences_done"] == 1

    # 2. Resumed from it, then killed in the middle of experience 3.
    _kill_at("STALLED-IN-EXPERIENCE 3", "--checkpoint-dir", str(ckpt_dir), "--resume",
             "--stall-in-experience", "3")
    assert _temporaries(ckpt_dir) == []  # the killed write's leftover was cleaned up
    assert read_checkpoint(checkpoint)["extra"]["next_experience"] == 3

    # 3. Resumed again, to the end of the stream.
    resumed = _run(tmp_path, "resumed", "--checkpoint-dir", str(ckpt_dir), "--resume")

    assert len(resumed["results"]) == 5
    assert resumed["decisions"] == reference["decisions"]
    assert resumed["active"] == reference["active"] and resumed["pruned"] == reference["pruned"]
    assert resumed["gate_logits"] == reference["gate_logits"]
    assert resumed["results"] == reference["results"]  # bitwise: exact float equality
    assert resumed["history"] == reference["history"]
    assert any("Forgetting" in k for k in resumed["history"])
    assert any("BWT" in k for k in resumed["history"])
    assert resumed["clock"] == reference["clock"]
    assert resumed["model_sha256"] == reference["model_sha256"]
    assert resumed["rng_after"] == reference["rng_after"]
