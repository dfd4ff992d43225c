"""LiteLoRA on SplitMNIST with distributed data parallel (torchrun), CPU or GPU.

One machine, 2 processes:

    python -m torch.distributed.run --standalone --nproc_per_node=2 \\
        examples/ddp_litelora.py --data-root data

Each process trains on its shard of every experience with ``--global-batch / world size``
samples a step; DDP averages the gradients, so a step sees ``--global-batch`` samples
whatever the number of processes. Rank 0 fetches the data first, decides keep / prune for
every candidate (broadcast to the others), prints the logs and writes ``--out``.
"""

from __future__ import annotations

import argparse
import json

import torch
from avalanche.benchmarks.classic import SplitMNIST
from avalanche.distributed import DistributedHelper
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.logging import InteractiveLogger
from avalanche.training.plugins import EvaluationPlugin

from avalanche_litelora import LiteLoRAStrategy
from avalanche_litelora.backbones import create_backbone
from avalanche_litelora.data import fetch_dataset
from avalanche_litelora.data.streams import subsample_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--experiences", type=int, default=5)
    parser.add_argument("--train-per-experience", type=int, default=2000)
    parser.add_argument("--test-per-experience", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--global-batch", type=int, default=64)
    parser.add_argument("--lambda-sparsity", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=1993)
    parser.add_argument("--out", default=None, help="JSON summary, written by rank 0")
    args = parser.parse_args()

    # gloo on CPU, nccl when every process has a GPU; seeds every rank alike.
    DistributedHelper.init_distributed(random_seed=args.seed, use_cuda=torch.cuda.is_available())
    device = DistributedHelper.make_device()
    world = DistributedHelper.world_size
    if args.global_batch % world:
        raise SystemExit(f"--global-batch {args.global_batch} is not divisible by {world} processes")

    with DistributedHelper.main_process_first():  # one download, the others wait
        if DistributedHelper.is_main_process:
            fetch_dataset("mnist", args.data_root)
        benchmark = SplitMNIST(n_experiences=args.experiences, dataset_root=args.data_root,
                               seed=args.seed, train_transform=None, eval_transform=None)
    benchmark = subsample_benchmark(benchmark, args.train_per_experience,
                                    args.test_per_experience, seed=args.seed)

    backbone = create_backbone("vit_small28_fmnist")
    # Avalanche refuses loggers outside rank 0; the metrics are still computed everywhere.
    loggers = [InteractiveLogger()] if DistributedHelper.is_main_process else []
    strategy = LiteLoRAStrategy(
        model=backbone,
        optimizer=torch.optim.SGD(backbone.parameters(), lr=0.05, momentum=0.9),
        rank=4,
        lambda_sparsity=args.lambda_sparsity,
        train_mb_size=args.global_batch // world,
        selection_mb_size=max(1, 16 // world),
        train_epochs=args.epochs,
        eval_mb_size=512,
        device=device,
        evaluator=EvaluationPlugin(accuracy_metrics(experience=True, stream=True), loggers=loggers),
    )
    for exp in benchmark.train_stream:
        strategy.train(exp, eval_streams=[])
        metrics = strategy.eval(benchmark.test_stream[: exp.current_experience + 1])

    summary = {
        "world_size": world,
        "accuracy_seen_classes": metrics["Top1_Acc_Stream/eval_phase/test_stream/Task000"],
        "active_adapters": strategy.active_adapters,
        "pruned_adapters": strategy.pruned_adapters,
        "adapter_parameters": strategy.adapter_parameter_count(),
    }
    if DistributedHelper.is_main_process:
        print(json.dumps(summary, indent=2))
        if args.out:
            with open(args.out, "w") as f:
                json.dump(summary, f, indent=2)
    DistributedHelper.barrier()


if __name__ == "__main__":
    main()
