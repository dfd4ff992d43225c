"""A short LiteLoRA run on split digits, checkpointed after every experience: the process the
resume tests kill. Not collected by pytest (no ``test_`` prefix); run as a script.

    python resumable_run.py --out result.json [--checkpoint-dir D [--resume]]
        [--stall-in-experience N] [--stall-in-write-after N]

``--stall-in-experience N`` prints ``STALLED-IN-EXPERIENCE N`` a few iterations into
training experience N and sleeps, so the test can SIGKILL it there; ``--stall-in-write-after
N`` makes the checkpoint written after experience N pause in the middle of the write
(:class:`PausingWriter`, passed to the checkpoint write through its file-wrapper seam).
The tests start it in a process forked from a server that has already imported Avalanche
(:func:`run_forwarding_output`), which saves seconds of imports per run.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for builders

import torch  # noqa: E402
from avalanche.core import SupervisedPlugin  # noqa: E402
from avalanche.evaluation.metrics import (  # noqa: E402
    accuracy_metrics,
    bwt_metrics,
    forgetting_metrics,
)
from avalanche.training.determinism.rng_manager import RNGManager  # noqa: E402
from avalanche.training.plugins import EvaluationPlugin  # noqa: E402

from avalanche_litelora import LiteLoRAStrategy  # noqa: E402
from avalanche_litelora.training.checkpoint.format import set_file_wrapper  # noqa: E402
from avalanche_litelora.training.loop import train_stream  # noqa: E402
from avalanche_litelora.lora.plugins import PruneClosedCandidatePlugin  # noqa: E402
from builders import digits_benchmark, lite_kwargs, sgd, tiny_mlp  # noqa: E402

SEED = 1993
#: lambda and gate learning rate at which this stream prunes some candidates and keeps others.
METHOD = dict(lambda_sparsity=0.05, selection_lr=0.02)


class PausingWriter:
    """Announces and pauses after the first bytes of a checkpoint are written (so a test can kill
    the process mid-write); everything is passed on to ``file``, so the bytes are the same."""

    def __init__(self, file, seconds: float, tmp):
        self.file, self.seconds, self.tmp, self.paused = file, seconds, tmp, False

    def write(self, data) -> int:
        written = self.file.write(data)
        if not self.paused:
            self.paused = True
            self.file.flush()
            print(f"CHECKPOINT-WRITE-PAUSED {self.tmp}", file=sys.stderr, flush=True)
            time.sleep(self.seconds)
        return written

    def flush(self) -> None:
        self.file.flush()


class StallPlugin(SupervisedPlugin):
    """Test hooks; inert unless asked (it is in every run, so every run has the same plugins)."""

    def __init__(self, in_experience: int = -1, in_write_after: int = -1):
        super().__init__()
        self.in_experience = in_experience
        self.in_write_after = in_write_after

    def after_training_iteration(self, strategy, **kwargs):
        clock = strategy.clock
        if clock.train_exp_counter == self.in_experience and clock.train_exp_iterations == 3:
            print(f"STALLED-IN-EXPERIENCE {self.in_experience}", flush=True)
            time.sleep(120)

    def after_training_exp(self, strategy, **kwargs):
        if strategy.clock.train_exp_counter == self.in_write_after:
            # the checkpoint that follows this experience
            set_file_wrapper(lambda file, tmp: PausingWriter(file, 120, tmp))


def build_strategy(stall: StallPlugin) -> LiteLoRAStrategy:
    RNGManager.set_random_seeds(SEED)
    model = tiny_mlp()
    evaluator = EvaluationPlugin(
        accuracy_metrics(experience=True, stream=True),
        forgetting_metrics(experience=True, stream=True),
        bwt_metrics(experience=True, stream=True),
        loggers=[],
    )
    return LiteLoRAStrategy(
        model=model, optimizer=sgd(model), plugins=[stall], **lite_kwargs(evaluator=evaluator, **METHOD)
    )


def model_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, value in model.state_dict().items():
        h.update(name.encode())
        if torch.is_tensor(value):
            h.update(value.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            h.update(repr(value).encode())
    return h.hexdigest()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--checkpoint-dir")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--stall-in-experience", type=int, default=-1)
    parser.add_argument("--stall-in-write-after", type=int, default=-1)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    strategy = build_strategy(StallPlugin(args.stall_in_experience, args.stall_in_write_after))
    results = train_stream(
        strategy, digits_benchmark(5), checkpoint_dir=args.checkpoint_dir, resume=args.resume
    )
    evaluator = strategy.evaluator
    Path(args.out).write_text(json.dumps({
        "results": results,
        "history": {k: [list(x), list(v)] for k, (x, v) in evaluator.all_metric_results.items()},
        "active": strategy.active_adapters,
        "pruned": strategy.pruned_adapters,
        "decisions": [list(d) for p in strategy.plugins if isinstance(p, PruneClosedCandidatePlugin)
                      for d in p.decisions],
        "gate_logits": strategy.gate_logits(),
        "clock": dict(vars(strategy.clock)),
        "model_sha256": model_digest(strategy.model),
        "rng_after": torch.rand(3).tolist(),
    }, sort_keys=True))


class _Forward(io.TextIOBase):
    """stdout / stderr of a test child: every write goes to the parent through a pipe."""

    def __init__(self, conn):
        self.conn = conn

    def write(self, text: str) -> int:
        self.conn.send(text)
        return len(text)


def run_forwarding_output(conn, argv) -> None:
    """Entry point of a multiprocessing child: :func:`main` with its output sent to ``conn``."""
    sys.stdout = sys.stderr = _Forward(conn)
    main(argv)
    conn.send("RUN-FINISHED\n")


if __name__ == "__main__":
    main()
