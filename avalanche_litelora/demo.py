"""What LiteLoRA's gate does, offline, in a few minutes on a CPU.

    python -m avalanche_litelora.demo --data-root data

On the shipped ViT (pretrained by this project on Fashion-MNIST, class token read out, where a
head alone learns little and the adapters carry each experience):

1. a stream whose redundancy is known (``known_redundancy_stream``, schedule
   ``N R0 N R2 N R4 N R6``: each new pixel permutation of MNIST followed at once by its repeat
   on fresh images): LiteLoRA's keep / prune decision beside each experience's label, then
   the head-only control (no adapter) and per-task LoRA (one adapter per experience);
2. the same kind of stream (``N N R0 R1``) on a frozen random projection to 8 features;
3. Avalanche's SplitMNIST (5 class-incremental experiences).

LiteLoRA uses its default lambda rule: a candidate is kept when it removes more than 40% of
the training loss its experience has without it. Fetches MNIST from an offline source if
needed and prints one table per stream.
"""

from __future__ import annotations

import argparse
import time
from typing import Dict, List, Optional

import torch
from avalanche.benchmarks.classic import SplitMNIST

from avalanche_litelora.backbones import create_backbone
from avalanche_litelora.data import fetch_dataset, known_redundancy_stream
from avalanche_litelora.data.redundancy_streams import NARROW_FEATURES, NARROW_LAMBDA, narrow_bank
from avalanche_litelora.data.streams import subsample_benchmark
from avalanche_litelora.evaluation import quiet_evaluator
from avalanche_litelora.metrics import (
    accuracy_row,
    average_anytime_accuracy,
    average_forgetting,
    final_accuracy,
    just_trained_accuracy,
)
from avalanche_litelora.progress import Countdown, format_duration, say
from avalanche_litelora.lora.strategies import HeadOnlyStrategy, LiteLoRAStrategy, PerTaskLoRAStrategy

#: The demo's parts, for its progress lines.
PARTS = 3


def announce(part: int, title: str, progress: Optional[bool] = None) -> None:
    say(f"[demo] part {part} of {PARTS}: {title}", progress)


def train_with_progress(strategy, stream, label: str, progress: Optional[bool] = None, after=None):
    """``strategy.train`` on each experience, one line as each starts and ends (with the time
    left); ``after(index)`` runs after each (the demo's evaluation)."""
    countdown = Countdown(label, "experience", len(stream), progress)
    for index, experience in enumerate(stream):
        countdown.start(index, "training" + (", then the gate's selection phase"
                                             if isinstance(strategy, LiteLoRAStrategy) and index else ""))
        strategy.train(experience)
        if after is not None:
            after(index)
        countdown.finish(index, "trained" + (" and evaluated" if after is not None else ""))


def run(strategy_cls, benchmark, args, label: str = "demo", **method_kwargs):
    """Train through the stream; return the summary row and the strategy (for its decisions)."""
    torch.manual_seed(args.seed)
    backbone = create_backbone(args.backbone)
    strategy = strategy_cls(
        model=backbone,
        optimizer=torch.optim.SGD(backbone.parameters(), lr=args.lr, momentum=0.9),
        rank=args.rank,
        train_mb_size=64,
        train_epochs=args.epochs,
        eval_mb_size=512,
        evaluator=quiet_evaluator(experience=True),
        **method_kwargs,
    )
    n = len(benchmark.train_stream)
    matrix: List[List[float]] = []
    start = time.time()
    train_with_progress(strategy, benchmark.train_stream, label, args.progress,
                        after=lambda _: matrix.append(accuracy_row(strategy.eval(benchmark.test_stream), n)))
    row = {
        "avg anytime acc": average_anytime_accuracy(matrix),
        "final acc": final_accuracy(matrix),
        "just-trained acc": just_trained_accuracy(matrix),
        "forgetting": average_forgetting(matrix),
        "active adapters": len(strategy.active_adapters),
        "adapter params": strategy.adapter_parameter_count(),
        "train+eval s": time.time() - start,
    }
    return row, strategy


def print_table(title: str, rows: Dict[str, Dict[str, float]]) -> None:
    columns = list(next(iter(rows.values())))
    print(f"\n{title}\n")
    print("| strategy | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, row in rows.items():
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")


def print_decisions(benchmark, strategy) -> None:
    """Experience i opened candidate adapter_i; the first has nothing to be compared with."""
    print("\n| experience | ground truth | transform | LiteLoRA's gate |\n|---|---|---|---|")
    for i, label in enumerate(benchmark.redundancy):
        kind = label.kind if label.source is None else f"{label.kind} of {label.source}"
        decision = "first adapter" if i == 0 else \
            "pruned" if f"adapter_{i}" in strategy.pruned_adapters else "kept"
        print(f"| {i} | {kind} | {label.transform} | {decision} |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="data", help="folder for MNIST (filled offline if empty)")
    parser.add_argument("--backbone", default="vit_small28_fmnist",
                        help="the class-token read-out (the *_tokens read-outs let a head alone match LoRA)")
    parser.add_argument("--epochs", type=int, default=5, help="per experience; LiteLoRA's selection is extra")
    parser.add_argument("--train-per-experience", type=int, default=1000)
    parser.add_argument("--test-per-experience", type=int, default=300)
    parser.add_argument("--lambda", dest="lambda_sparsity", type=float,
                        help="LiteLoRA's lambda_sparsity (default: its config's, 0.4 of the closed loss)")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1993)
    parser.add_argument("--no-progress", dest="progress", action="store_const", const=False, default=None,
                        help="no progress lines on stderr (as AVALANCHE_LITELORA_PROGRESS=0)")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    say(f"[demo] MNIST in {args.data_root}: fetched offline if missing", args.progress)
    fetched = fetch_dataset("mnist", args.data_root)
    print(f"MNIST: {fetched.source} ({fetched.raw_dir})")
    lite = dict(selection_mb_size=16)
    if args.lambda_sparsity is not None:
        lite["lambda_sparsity"] = args.lambda_sparsity
    lite_name = f"LiteLoRA (lambda={args.lambda_sparsity:g})" if args.lambda_sparsity is not None else "LiteLoRA"

    announce(1, "known redundancy, each new permutation repeated at once (LiteLoRA, the head-only "
                "control, per-task LoRA)", args.progress)
    known = known_redundancy_stream(form="domain", schedule="short_immediate", seed=args.seed,
                                    dataset_root=args.data_root,
                                    train_per_experience=args.train_per_experience,
                                    test_per_experience=args.test_per_experience)
    lite_row, lite_strategy = run(LiteLoRAStrategy, known, args, "part 1, LiteLoRA", **lite)
    print("\nLiteLoRA's decisions on domain-incremental MNIST (8 experiences, one head):")
    print_decisions(known, lite_strategy)
    rows = {lite_name: lite_row,
            "head-only control": run(HeadOnlyStrategy, known, args, "part 1, head-only")[0],
            "per-task LoRA": run(PerTaskLoRAStrategy, known, args, "part 1, per-task LoRA")[0]}
    print_table("Known redundancy: domain-incremental MNIST, 8 experiences, one head", rows)

    announce(2, f"the same kind of stream on a narrow bank (frozen Linear(784, {NARROW_FEATURES}))", args.progress)
    narrow, narrow_strategy = narrow_bank(args.data_root)
    train_with_progress(narrow_strategy, narrow.train_stream, "narrow bank, LiteLoRA", args.progress)
    print(f"\nThe same kind of stream on a narrow bank (frozen Linear(784, {NARROW_FEATURES})), "
          f"LiteLoRA lambda={NARROW_LAMBDA:g}")
    print_decisions(narrow, narrow_strategy)

    announce(3, "SplitMNIST, 5 class-incremental experiences (LiteLoRA, then per-task LoRA)", args.progress)
    split = SplitMNIST(n_experiences=5, seed=args.seed, dataset_root=args.data_root,
                       train_transform=None, eval_transform=None)  # the shipped ViT reads [0, 1] pixels
    split = subsample_benchmark(split, args.train_per_experience, args.test_per_experience, seed=args.seed)
    rows = {lite_name: run(LiteLoRAStrategy, split, args, "part 3, LiteLoRA", **lite)[0],
            "per-task LoRA": run(PerTaskLoRAStrategy, split, args, "part 3, per-task LoRA")[0]}
    print_table("SplitMNIST: 5 class-incremental experiences", rows)
    print(f"\nseed {args.seed}, backbone {args.backbone}, {args.epochs} epochs of "
          f"{args.train_per_experience} samples per experience, rank {args.rank}")
    say(f"[demo] done in {format_duration(time.perf_counter() - started)}", args.progress)


if __name__ == "__main__":
    main()
