"""One rank of the DDP test (or, called in-process, the single-process reference).

Run as ``python -m torch.distributed.run --standalone --nproc_per_node=2 ddp_worker.py OUT``:
each rank trains LiteLoRA, per-task LoRA and sequential LoRA on a tiny digits stream and
saves, per strategy, its bank (state dict), gate logits, decisions and test accuracy to
``OUT/<strategy>_rank<r>.pt``. The global minibatch is fixed (``GLOBAL_MB``): each of W
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
from builders import MLP_TARGETS, digits_benchmark, sgd, tiny_mlp  # noqa: E402

SEED = 1234
GLOBAL_MB = 32
GLOBAL_SELECTION_MB = 8
N_EXPERIENCES = 3
ACC_KEY = "Top1_Acc_Stream/eval_phase/test_stream/Task000"


class RanksInSync(SupervisedPlugin, supports_distributed=True):
    """After every epoch, every trainable tensor must be bitwise equal on all ranks.

    This is what DDP gives only if the wrapper knows the tensor: it checks that an adapter
    opened mid-stream, and the logit of the selection phase, are synchronised, before any
    end-of-experience broadcast could hide a difference.
    """

    def __init__(self):
        super().__init__()
        self.checks = 0

    def after_training_epoch(self, strategy, **kwargs):
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
    }


def _direct_accuracy(model, stream) -> float:
    """Accuracy over every test sample, computed here, not by Avalanche's metrics."""
    model = DistributedHelper.unwrap_model(model).eval()
    correct = total = 0
    with torch.no_grad():
        for exp in stream:
            x = torch.stack([exp.dataset[i][0] for i in range(len(exp.dataset))])
            y = torch.tensor([exp.dataset[i][1] for i in range(len(exp.dataset))])
            correct += int((model(x).argmax(1) == y).sum())
            total += len(y)
    return correct / total


def _refusal_check() -> dict:
    """Under a process group the strategy refuses a plugin that is not rank-safe, untouched."""
    mlp = tiny_mlp()
    before = {k: v.clone() for k, v in mlp.state_dict().items()}
    try:
        LiteLoRAStrategy(model=mlp, optimizer=sgd(mlp), target_modules=MLP_TARGETS,
                         train_epochs=2, plugins=[NotRankSafe()])
    except ValueError as err:
        untouched = all(torch.equal(before[k], v) for k, v in mlp.state_dict().items())
        return {"refused": "NotRankSafe" in str(err), "untouched": untouched}
    return {"refused": False, "untouched": None}


def run(out_dir: str) -> None:
    """Train the three strategies and save what this rank ends with."""
    out = Path(out_dir)
    rank, world = DistributedHelper.rank, DistributedHelper.world_size
    benchmark = digits_benchmark(5, task_labels=False)
    train = list(benchmark.train_stream)[:N_EXPERIENCES]
    test = benchmark.test_stream[:N_EXPERIENCES]
    for name, make in _strategies(world).items():
        mlp = tiny_mlp(seed=0)  # the same backbone everywhere; SEED drives the rest
        DistributedHelper.set_random_seeds(SEED)
        sync = RanksInSync()
        strategy = make(mlp, [sync])  # default evaluator: Avalanche logs on rank 0 only
        for exp in train:
            strategy.train(exp, eval_streams=[], shuffle=False)
        metrics = strategy.eval(test)
        model = strategy.lora_model
        result = {
            "world_size": world,
            "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
                      if torch.is_tensor(v)},
            "logits": model.gate_logits(),
            "adapters": model.adapter_names,
            "pruned": list(model.pruned_adapters),
            "acc": float(metrics[ACC_KEY]),
            "direct_acc": _direct_accuracy(strategy.model, test),
            "sync_checks": sync.checks,
            "ddp_wrapped": isinstance(strategy.model, torch.nn.parallel.DistributedDataParallel),
        }
        torch.save(result, out / f"{name}_rank{rank}.pt")
    if world > 1:
        torch.save(_refusal_check(), out / f"refusal_rank{rank}.pt")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    DistributedHelper.init_distributed(random_seed=SEED, backend="gloo", use_cuda=False)
    run(sys.argv[1])
    DistributedHelper.barrier()
    torch.distributed.destroy_process_group()
