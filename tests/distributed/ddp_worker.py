"""One rank of the DDP test (or, called in-process, the single-process reference).

Run as ``python -m torch.distributed.run --standalone --nproc_per_node=2 ddp_worker.py OUT``:
each rank trains LiteLoRA, per-task LoRA and sequential LoRA on a tiny digits stream, and
Share on its task-incremental version, and saves, per strategy, its model (state dict),
gate logits, decisions and test accuracy to ``OUT/<strategy>_rank<r>.pt``. The global minibatch is fixed (``GLOBAL_MB``): each of W
ranks takes ``GLOBAL_MB / W`` samples a step and DDP averages the gradients, so a step sees
as many samples as a single-process step does.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/ (builders)

import torch  # noqa: E402
from avalanche.core import SupervisedPlugin  # noqa: E402
from avalanche.distributed import DistributedHelper  # noqa: E402

from avalanche_litelora import (  # noqa: E402
    LiteLoRAStrategy,
    PerTaskLoRAStrategy,
    SequentialLoRAStrategy,
)
from avalanche_litelora.training.distributed import broadcast_state_  # noqa: E402
from avalanche_litelora.share.strategy import ShareStrategy  # noqa: E402
from builders import MLP_TARGETS, digits_benchmark, quiet_evaluator, sgd, tiny_mlp  # noqa: E402

SEED = 1234
GLOBAL_MB = 32
GLOBAL_SELECTION_MB = 8
N_EXPERIENCES = 3
ACC_KEY = "Top1_Acc_Stream/eval_phase/test_stream/Task000"
#: Avalanche names a task-labelled stream's accuracy after the last experience's task.
ACC_KEY_TASKS = f"Top1_Acc_Stream/eval_phase/test_stream/Task{N_EXPERIENCES - 1:03d}"
#: Strategies trained on the task-incremental stream (their model needs task labels).
TASK_INCREMENTAL = ("share",)


class RanksInSync(SupervisedPlugin, supports_distributed=True):
    """After every epoch, every trainable tensor must be bitwise equal on all ranks.

    This is what DDP gives only if the wrapper knows the tensor: it checks that an adapter
    opened mid-stream, and the logit of the selection phase, are synchronised, before any
    end-of-experience broadcast could hide a difference.
    """

    def __init__(self):
        super().__init__()
        self.checks = 0
        self.epochs = self.wrapped_epochs = 0

    def after_training_epoch(self, strategy, **kwargs):
        self.epochs += 1
        self.wrapped_epochs += isinstance(strategy.model, torch.nn.parallel.DistributedDataParallel)
        model = DistributedHelper.unwrap_model(strategy.model)
        for name, p in model.named_parameters():
            if p.requires_grad:
                DistributedHelper.check_equal_tensors(p.detach())  # raises if they differ
                self.checks += 1


class NotRankSafe(SupervisedPlugin):
    """A plugin that does not declare ``supports_distributed``."""


def _strategies(world_size: int):
    per_rank = dict(train_mb_size=GLOBAL_MB // world_size, eval_mb_size=256, train_epochs=3)
    common = dict(rank=4, target_modules=MLP_TARGETS, **per_rank)
    return {
        # A large lambda so that the prune path (decision, refit) runs under DDP too.
        "litelora": lambda m, p: LiteLoRAStrategy(
            model=m, optimizer=sgd(m), lambda_sparsity=0.5,
            selection_mb_size=GLOBAL_SELECTION_MB // world_size, refit_steps=10,
            plugins=p, **common,
        ),
        "pertask": lambda m, p: PerTaskLoRAStrategy(model=m, optimizer=sgd(m), plugins=p, **common),
        "sequential": lambda m, p: SequentialLoRAStrategy(model=m, optimizer=sgd(m), plugins=p, **common),
        # The default 0.6 threshold keeps bases smaller than the stack: the merge really
        # projects. lr 0.1 takes every task past the steep part of its learning curve, where
        # rounding differences between the runs would move test samples across the boundary.
        "share": lambda m, p: ShareStrategy(
            model=m, optimizer=sgd(m, lr=0.1), pseudo_rank=1, temporary_vectors=2,
            plugins=p, **common,
        ),
    }


def _direct_accuracy(model, stream, with_tasks: bool = False) -> float:
    """Accuracy over every test sample, computed here, not by Avalanche's metrics."""
    model = DistributedHelper.unwrap_model(model).eval()
    correct = total = 0
    with torch.no_grad():
        for exp in stream:
            x = torch.stack([exp.dataset[i][0] for i in range(len(exp.dataset))])
            y = torch.tensor([exp.dataset[i][1] for i in range(len(exp.dataset))])
            args = (torch.tensor([exp.dataset[i][2] for i in range(len(y))]),) if with_tasks else ()
            correct += int((model(x, *args).argmax(1) == y).sum())
            total += len(y)
    return correct / total


def _refusal_check(strategy_class=LiteLoRAStrategy) -> dict:
    """Under a process group the strategy refuses a plugin that is not rank-safe, untouched."""
    mlp = tiny_mlp()
    before = {k: v.clone() for k, v in mlp.state_dict().items()}
    try:
        strategy_class(model=mlp, optimizer=sgd(mlp), target_modules=MLP_TARGETS,
                       train_epochs=2, plugins=[NotRankSafe()])
    except ValueError as err:
        untouched = all(torch.equal(before[k], v) for k, v in mlp.state_dict().items())
        return {"refused": "NotRankSafe" in str(err), "untouched": untouched}
    return {"refused": False, "untouched": None}


class NaNOnRank1(SupervisedPlugin, supports_distributed=True):
    """A non-finite loss on rank 1 alone, at the first step of the second experience."""

    def before_backward(self, strategy, **kwargs):
        if strategy.clock.train_exp_counter == 1 and DistributedHelper.rank == 1:
            strategy.loss = strategy.loss * float("nan")


def _interleaved(exp):
    """The experience with its classes interleaved (the generator groups them by class).

    Training runs with ``shuffle=False`` so that both runs see the same batches; grouped
    classes would make every batch single-class and leave Share at chance, where any
    two runs agree.
    """
    order = torch.randperm(len(exp.dataset), generator=torch.Generator().manual_seed(SEED))
    exp.dataset = exp.dataset.subset(order.tolist())
    return exp


def _share_checks(model, train, world: int) -> dict:
    """Share's two collective guarantees, beyond the trained run's end state.

    A subspace that differs on one rank, even in shape, is replaced by rank 0's; a
    non-finite loss on rank 1 alone stops both ranks at the same step, each restored.
    """
    if DistributedHelper.rank == 1:  # rank 1 alone: temporary vectors and a task to drop
        model.open_tasks([N_EXPERIENCES], pseudo_rank=1, temporary_vectors=2)
    broadcast_state_(model, model.is_learned_key)
    resynced = {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if torch.is_tensor(v)}
    mlp = tiny_mlp(seed=0)
    DistributedHelper.set_random_seeds(SEED)
    strategy = ShareStrategy(model=mlp, optimizer=sgd(mlp), rank=4, target_modules=MLP_TARGETS,
                             train_mb_size=GLOBAL_MB // world, train_epochs=1,
                             evaluator=quiet_evaluator(), plugins=[NaNOnRank1()])
    strategy.train(train[0], eval_streams=[], shuffle=False)
    saved = {k: v.clone() for k, v in strategy.adapter_model.state_dict().items() if torch.is_tensor(v)}
    try:
        strategy.train(train[1], eval_streams=[], shuffle=False)
        stopped = False
    except FloatingPointError:
        stopped = True
    state = strategy.adapter_model.state_dict()  # (plus task 1's head, grown before the snapshot)
    restored = strategy.adapter_model.tasks == [0] and all(
        k in state and torch.equal(v, state[k]) for k, v in saved.items()
    )
    return {"resynced": resynced, "stopped": stopped, "restored": restored}


def run(out_dir: str) -> None:
    """Train the strategies and save what this rank ends with."""
    out = Path(out_dir)
    rank, world = DistributedHelper.rank, DistributedHelper.world_size
    benchmarks = {ti: digits_benchmark(5, task_labels=ti) for ti in (False, True)}
    for name, make in _strategies(world).items():
        benchmark = benchmarks[name in TASK_INCREMENTAL]
        train = list(benchmark.train_stream)[:N_EXPERIENCES]
        test = benchmark.test_stream[:N_EXPERIENCES]
        share = name in TASK_INCREMENTAL
        if share:
            train = [_interleaved(exp) for exp in train]
        mlp = tiny_mlp(seed=0)  # the same backbone everywhere; SEED drives the rest
        DistributedHelper.set_random_seeds(SEED)
        sync = RanksInSync()
        strategy = make(mlp, [sync])  # default evaluator: Avalanche logs on rank 0 only
        for exp in train:
            strategy.train(exp, eval_streams=[], shuffle=False)
        metrics = strategy.eval(test)
        model = strategy.adapter_model
        result = {
            "world_size": world,
            "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
                      if torch.is_tensor(v)},
            "logits": {} if share else model.gate_logits(),
            "adapters": model.task_names if share else model.adapter_names,
            "pruned": [] if share else list(model.pruned_adapters),
            "acc": float(metrics[ACC_KEY_TASKS if share else ACC_KEY]),
            "direct_acc": _direct_accuracy(strategy.model, test, with_tasks=share),
            "sync_checks": sync.checks,
            # every epoch trained through a DDP wrapper (Share drops it after each merge)
            "ddp_wrapped": sync.epochs > 0 and sync.wrapped_epochs == sync.epochs,
        }
        if share:
            result["merge_reports"] = [vars(r) for r in strategy.merge_reports]
            if world > 1:
                result.update(_share_checks(model, train, world))
        torch.save(result, out / f"{name}_rank{rank}.pt")
    if world > 1:
        torch.save(_refusal_check(), out / f"refusal_rank{rank}.pt")
        torch.save(_refusal_check(ShareStrategy), out / f"refusal_share_rank{rank}.pt")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    DistributedHelper.init_distributed(random_seed=SEED, backend="gloo", use_cuda=False)
    run(sys.argv[1])
    DistributedHelper.barrier()
    torch.distributed.destroy_process_group()
