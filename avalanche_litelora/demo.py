"""LiteLoRA against per-task LoRA on Avalanche's SplitMNIST, offline, in a few minutes on a CPU.

    python -m avalanche_litelora.demo --data-root data

Fetches MNIST from an offline source if needed, adapts the shipped ViT (pretrained by this
project on Fashion-MNIST) with both strategies and prints one table.
"""

from __future__ import annotations

import argparse
import time
from typing import Dict, List

import torch
from avalanche.benchmarks.classic import SplitMNIST
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

from avalanche_litelora.backbones import create_backbone
from avalanche_litelora.data import fetch_dataset
from avalanche_litelora.data.streams import subsample_benchmark
from avalanche_litelora.metrics import (
    accuracy_row,
    average_anytime_accuracy,
    average_forgetting,
    final_accuracy,
)
from avalanche_litelora.training import LiteLoRAStrategy, PerTaskLoRAStrategy


def run(strategy_cls, benchmark, args, **method_kwargs) -> Dict[str, float]:
    torch.manual_seed(args.seed)
    backbone = create_backbone(args.backbone)
    optimizer = torch.optim.SGD(backbone.parameters(), lr=args.lr, momentum=0.9)
    strategy = strategy_cls(
        model=backbone,
        optimizer=optimizer,
        rank=args.rank,
        train_mb_size=64,
        train_epochs=args.epochs,
        eval_mb_size=512,
        evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]),
        **method_kwargs,
    )
    n = len(benchmark.train_stream)
    matrix: List[List[float]] = []
    start = time.time()
    for exp in benchmark.train_stream:
        strategy.train(exp)
        matrix.append(accuracy_row(strategy.eval(benchmark.test_stream), n))
        print(
            f"  {strategy_cls.__name__:<20} after experience {exp.current_experience}: "
            f"accuracy on seen classes {sum(matrix[-1][: len(matrix)]) / len(matrix):.3f}, "
            f"active adapters {strategy.active_adapters}"
        )
    return {
        "avg anytime acc": average_anytime_accuracy(matrix),
        "final acc": final_accuracy(matrix),
        "forgetting": average_forgetting(matrix),
        "active adapters": len(strategy.active_adapters),
        "adapter params": strategy.adapter_parameter_count(),
        "train+eval s": time.time() - start,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="data", help="folder for MNIST (filled offline if empty)")
    parser.add_argument("--backbone", default="vit_small28_fmnist")
    parser.add_argument("--epochs", type=int, default=3, help="per experience; LiteLoRA's last one selects")
    parser.add_argument("--train-per-experience", type=int, default=2000,
                        help="random training samples per experience (0: all ~12k)")
    parser.add_argument("--test-per-experience", type=int, default=1000,
                        help="random test samples per experience (0: all ~2k)")
    parser.add_argument("--lambdas", type=float, nargs="+", default=[0.03, 1.0],
                        help="one LiteLoRA run per sparsity weight")
    parser.add_argument("--selection-mb-size", type=int, default=16,
                        help="small selection minibatches give the gate logit more steps")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1993)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    fetched = fetch_dataset("mnist", args.data_root)
    print(f"MNIST: {fetched.source} ({fetched.raw_dir})")
    benchmark = SplitMNIST(
        n_experiences=5, seed=args.seed, dataset_root=args.data_root,
        train_transform=None, eval_transform=None,  # the shipped ViT reads [0, 1] pixels
    )
    if args.train_per_experience or args.test_per_experience:
        benchmark = subsample_benchmark(
            benchmark, args.train_per_experience or None, args.test_per_experience or None, seed=args.seed
        )

    rows = {
        f"LiteLoRA (lambda={lam:g})": run(
            LiteLoRAStrategy, benchmark, args,
            lambda_sparsity=lam, selection_mb_size=args.selection_mb_size,
        )
        for lam in args.lambdas
    }
    rows["per-task LoRA"] = run(PerTaskLoRAStrategy, benchmark, args)
    columns = list(next(iter(rows.values())))
    print()
    print("| strategy | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, row in rows.items():
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nSplitMNIST, 5 experiences, class-incremental, seed {args.seed}, backbone {args.backbone}")


if __name__ == "__main__":
    main()
