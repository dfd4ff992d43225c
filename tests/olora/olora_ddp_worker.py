"""One rank of O-LoRA's torchrun test (or, called in-process, the single-process reference).

``python -m torch.distributed.run --standalone --nproc_per_node=2 olora_ddp_worker.py OUT``:
each rank trains O-LoRA on three experiences of split digits (``shuffle=False``, a global
minibatch of ``GLOBAL_MB`` split over the ranks) and saves to ``OUT/olora_rank<r>.pt`` its
weights, the newest adapter's overlap with the earlier ones, the last step's penalty terms
and its test accuracy. The penalty is computed on each rank from its own (DDP-synchronised)
copy of the adapters, so it must agree across ranks without a collective of its own.
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

from avalanche_litelora.olora import OLoRAStrategy, OrthogonalityPlugin  # noqa: E402
from builders import MLP_TARGETS, digits_benchmark, quiet_evaluator, sgd, tiny_mlp  # noqa: E402

SEED = 1234
GLOBAL_MB = 32
N_EXPERIENCES = 3
ACC_KEY = "Top1_Acc_Stream/eval_phase/test_stream/Task000"


class TrainablesAgree(SupervisedPlugin, supports_distributed=True):
    """After every epoch each trainable tensor is bitwise the same on every rank; counts the
    epochs that ran through a DDP wrapper."""

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


def run(out_dir: str) -> None:
    rank, world = DistributedHelper.rank, DistributedHelper.world_size
    benchmark = digits_benchmark(5)
    DistributedHelper.set_random_seeds(SEED)
    mlp = tiny_mlp(seed=0)
    agree = TrainablesAgree()
    strategy = OLoRAStrategy(model=mlp, optimizer=sgd(mlp), rank=4, target_modules=MLP_TARGETS,
                             train_mb_size=GLOBAL_MB // world, eval_mb_size=256, train_epochs=3,
                             evaluator=quiet_evaluator(), plugins=[agree])
    for exp in list(benchmark.train_stream)[:N_EXPERIENCES]:
        strategy.train(exp, eval_streams=[], shuffle=False)
    test = benchmark.test_stream[:N_EXPERIENCES]
    metrics = strategy.eval(test)
    model = strategy.adapter_model
    penalty = next(p for p in strategy.plugins if isinstance(p, OrthogonalityPlugin))
    result = {
        "world_size": world,
        "state": {k: v.detach().clone() for k, v in model.state_dict().items() if torch.is_tensor(v)},
        "adapters": list(model.adapter_names),
        "overlap": strategy.overlap(),
        "penalty": dict(penalty.last),
        "acc": float(metrics[ACC_KEY]),
        "sync_checks": agree.checks,
        "ddp_wrapped": agree.epochs > 0 and agree.wrapped == agree.epochs,
    }
    torch.save(result, Path(out_dir) / f"olora_rank{rank}.pt")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    DistributedHelper.init_distributed(random_seed=SEED, backend="gloo", use_cuda=False)
    run(sys.argv[1])
    DistributedHelper.barrier()
    torch.distributed.destroy_process_group()
