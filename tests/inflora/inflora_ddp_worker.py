"""One rank of InfLoRA's torchrun test (or, called in-process, the single-process reference).

``python -m torch.distributed.run --standalone --nproc_per_node=2 inflora_ddp_worker.py OUT``:
each rank trains InfLoRA on three experiences of split digits (``shuffle=False``, a global
minibatch of ``GLOBAL_MB`` split over the ranks) and saves to ``OUT/inflora_rank<r>.pt`` what
the comparison needs: the weights, every adapter's update ``B A``, the subspace memory, and
every input representation the method computed (each rank sees its shard; the representation
is all-reduced, so it must be the whole experience's on every rank).
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

import avalanche_litelora.inflora.plugins as inflora_plugins  # noqa: E402
from avalanche_litelora.inflora import InfLoRAStrategy, old_space  # noqa: E402
from builders import MLP_TARGETS, digits_benchmark, quiet_evaluator, sgd, tiny_mlp  # noqa: E402

SEED = 1234
GLOBAL_MB = 32
N_EXPERIENCES = 3
ACC_KEY = "Top1_Acc_Stream/eval_phase/test_stream/Task000"


class TrainablesAgree(SupervisedPlugin, supports_distributed=True):
    """After every epoch, each trainable tensor is bitwise the same on every rank (DDP knew it),
    and the epoch ran through a DDP wrapper whenever there is more than one rank."""

    def __init__(self):
        super().__init__()
        self.checks = self.epochs = self.wrapped = 0

    def after_training_epoch(self, strategy, **kwargs):
        self.epochs += 1
        self.wrapped += isinstance(strategy.model, torch.nn.parallel.DistributedDataParallel)
        for p in DistributedHelper.unwrap_model(strategy.model).parameters():
            if p.requires_grad:
                DistributedHelper.check_equal_tensors(p.detach())
                self.checks += 1


def _recording_representations(recorded: list):
    """The plugins' representation pass, recording what it returns (the all-reduced statistics)."""
    original = inflora_plugins._representations

    def record(strategy, model):
        out = original(strategy, model)
        recorded.append({name: r.clone() for name, r in out.items()})
        return out

    return original, record


def _accuracy(model, stream) -> float:
    """Accuracy over every test sample, computed here rather than by Avalanche's metrics."""
    model = DistributedHelper.unwrap_model(model).eval()
    correct = total = 0
    with torch.no_grad():
        for exp in stream:
            x = torch.stack([exp.dataset[i][0] for i in range(len(exp.dataset))])
            y = torch.tensor([exp.dataset[i][1] for i in range(len(exp.dataset))])
            correct += int((model(x).argmax(1) == y).sum())
            total += len(y)
    return correct / total


def run(out_dir: str) -> None:
    rank, world = DistributedHelper.rank, DistributedHelper.world_size
    benchmark = digits_benchmark(5)
    recorded: list = []
    original, record = _recording_representations(recorded)
    inflora_plugins._representations = record
    try:
        DistributedHelper.set_random_seeds(SEED)
        mlp = tiny_mlp(seed=0)
        agree = TrainablesAgree()
        strategy = InfLoRAStrategy(model=mlp, optimizer=sgd(mlp), rank=4, target_modules=MLP_TARGETS,
                                   train_mb_size=GLOBAL_MB // world, eval_mb_size=256, train_epochs=3,
                                   evaluator=quiet_evaluator(), plugins=[agree])
        for exp in list(benchmark.train_stream)[:N_EXPERIENCES]:
            strategy.train(exp, eval_streams=[], shuffle=False)
        test = benchmark.test_stream[:N_EXPERIENCES]
        metrics = strategy.eval(test)
    finally:
        inflora_plugins._representations = original
    model = strategy.adapter_model
    memory = strategy.subspace_memory
    result = {
        "world_size": world,
        "state": {k: v.detach().clone() for k, v in model.state_dict().items() if torch.is_tensor(v)},
        "deltas": {f"{layer_name}/{name}": layer.get_delta_weight(name).detach().double().clone()
                   for layer_name, layer in model.lora_layers().items() for name in layer.adapters},
        "memory": {name: (m.kind, m.basis.clone()) for name, m in memory.memory.items()},
        "projectors": {name: (lambda b: b @ b.T)(old_space(m)) for name, m in memory.memory.items()},
        "dims": memory.dimensions(),
        "thresholds": list(memory.thresholds),
        # before each experience (design) and after it (memory update), in that order
        "representations": recorded,
        "acc": float(metrics[ACC_KEY]),
        "direct_acc": _accuracy(strategy.model, test),
        "sync_checks": agree.checks,
        "ddp_wrapped": agree.epochs > 0 and agree.wrapped == agree.epochs,
    }
    torch.save(result, Path(out_dir) / f"inflora_rank{rank}.pt")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    DistributedHelper.init_distributed(random_seed=SEED, backend="gloo", use_cuda=False)
    run(sys.argv[1])
    DistributedHelper.barrier()
    torch.distributed.destroy_process_group()
