"""Is the suite's budget one where LoRA has learned? Per-epoch validation accuracy of per-task LoRA.

    python -m benchmarks.studies.plateau [--streams ...] [--epochs 5] [--experiences 2] [--out results/plateau]

For each stream, per-task LoRA trains its first ``--experiences`` experiences at the default
suite's sizes (configs/suites.json) with Avalanche's periodic evaluation (``eval_every=1``) on
the held-out validation part of the experience it is training. The budget has plateaued at
``E`` epochs when epoch ``E`` adds less than one point over epoch ``E - 1``. Writes
``plateau.json`` and ``plateau.md`` (one row per stream and experience, one column per epoch).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List

import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

from avalanche_litelora.backbones import create_backbone
from benchmarks.harness.methods import Budget, build_strategy
from benchmarks.harness.streams import build_stream, get_stream

SUITES_FILE = Path(__file__).parents[1] / "configs" / "suites.json"
#: A budget has plateaued when its last epoch adds less than this (accuracy, 0-1).
PLATEAU_GAIN = 0.01


def default_suite() -> Dict:
    with open(SUITES_FILE) as f:
        return json.load(f)["default"]


def epoch_curve(stream: str, experiences: int, epochs: int, seed: int, data_root: str,
                validation_fraction: float = 0.2) -> List[List[float]]:
    """Validation accuracy after each epoch, one list per experience trained."""
    suite = default_suite()
    spec = get_stream(stream)
    sizes = suite.get("stream_sizes", {}).get(stream, {})
    benchmark = build_stream(spec, seed, data_root,
                             sizes.get("train_per_experience", suite["train_per_experience"]),
                             sizes.get("test_per_experience", suite["test_per_experience"]),
                             validation_fraction=validation_fraction)
    torch.manual_seed(seed)
    evaluator = EvaluationPlugin(accuracy_metrics(stream=True), loggers=[])
    budget = Budget(epochs=epochs, task_incremental=spec.task_incremental)
    strategy = build_strategy("per_task_lora", create_backbone(spec.backbone), budget, evaluator,
                              overrides={"eval_every": 1})
    curves = []
    for i in range(experiences):
        strategy.train(benchmark.train_stream[i], eval_streams=[benchmark.valid_stream[i]])
        metrics = strategy.evaluator.get_all_metrics()
        key = f"Top1_Acc_Stream/eval_phase/valid_stream/Task{benchmark.valid_stream[i].task_label:03d}"
        _, values = metrics[key]
        curves.append([float(v) for v in values[-epochs:]])  # periodic eval: one per epoch
    return curves


def plateau_epoch(curve: List[float]) -> int:
    """Smallest budget E (epochs, >= 2) whose last epoch adds less than :data:`PLATEAU_GAIN`.

    0 when every epoch of the curve still adds a point or more.
    """
    for e in range(1, len(curve)):
        if curve[e] - curve[e - 1] < PLATEAU_GAIN:
            return e + 1
    return 0


def markdown(rows: List[Dict], epochs: int) -> str:
    head = "| stream | experience | " + " | ".join(f"epoch {e}" for e in range(1, epochs + 1)) + \
        " | plateau at |\n|---|---|" + "---|" * (epochs + 1) + "\n"
    body = "".join(
        f"| {r['stream']} | {r['experience']} | " + " | ".join(f"{a:.3f}" for a in r["curve"]) +
        f" | {r['plateau_epoch'] or f'> {epochs}'} |\n" for r in rows)
    return head + body


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", nargs="+", default=None, help="default: the default suite's streams")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--experiences", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1993)
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--out", default="docs/benchmarks/studies/plateau")
    args = parser.parse_args(argv)
    if args.epochs < 2 or args.experiences < 1:
        parser.error("--epochs must be at least 2 and --experiences at least 1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for stream in args.streams or default_suite()["streams"]:
        for i, curve in enumerate(epoch_curve(stream, args.experiences, args.epochs, args.seed, args.data_root)):
            rows.append(dict(stream=stream, experience=i, curve=curve, plateau_epoch=plateau_epoch(curve)))
            print(rows[-1], flush=True)
        (out / "plateau.json").write_text(json.dumps(rows, indent=2))
    text = markdown(rows, args.epochs)
    (out / "plateau.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
