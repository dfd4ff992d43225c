"""What must be identical on every rank when the bank trains under torchrun (DDP).

Avalanche 0.6's :data:`~avalanche.distributed.DistributedHelper` sets up the process group,
seeds every rank and shards the data, but its templates never wrap the model in
``DistributedDataParallel``. The adapter bank also changes what trains inside an experience
(candidate and magnitudes, then the gate logit alone, then the head during a refit), and a
DDP wrapper only synchronises the gradients of parameters that required one when it was
built. So the plugins call :func:`wrap_for_training` after every such change; the wrapper's
construction also copies rank 0's parameters and buffers to every rank, so a freshly opened
candidate starts identical everywhere. Every function here is a no-op in a single process.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Dict, Iterable, List, Tuple

import torch
from avalanche.benchmarks.utils.data_loader import MultiDatasetDataLoader, SingleDatasetDataLoader
from avalanche.distributed import DistributedHelper
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from avalanche_litelora.adapters.access import unwrap_ddp
from avalanche_litelora.training import protocol
from avalanche_litelora.former_names import getattr_for as _getattr_for


def is_distributed() -> bool:
    """True inside an initialised process group (``DistributedHelper.init_distributed``)."""
    return DistributedHelper.is_distributed


def is_main_process() -> bool:
    """Rank 0, or the only process: the one that writes logs and files."""
    return DistributedHelper.is_main_process


def drop_ddp_wrapper(strategy) -> None:
    """Give the strategy its plain model back (Avalanche's adaptation then sees stable names)."""
    strategy.model = unwrap_ddp(strategy.model)


def wrap_for_training(strategy) -> None:
    """(Re)build the DDP wrapper around the parameters that train now.

    ``find_unused_parameters`` because a closed gate skips its adapter's work; no buffer
    broadcast in forward, because nothing in the bank's buffers changes per batch (the
    frozen backbone keeps its statistics), so evaluation runs collective-free and can even
    be called on one rank only.
    """
    if not is_distributed():
        return
    model = unwrap_ddp(strategy.model)
    if not any(p.requires_grad for p in model.parameters()):
        strategy.model = model  # DDP refuses a module with nothing to train
        return
    device_ids = None
    if DistributedHelper.use_cuda or DistributedHelper.forced_cuda_comm:
        device_ids = [DistributedHelper.make_device()]
    strategy.model = DistributedDataParallel(
        model,
        device_ids=device_ids,
        find_unused_parameters=True,
        forward_sync_buffers=False,
    )


def make_optimizer(strategy, **kwargs) -> None:
    """``strategy.make_optimizer`` on the unwrapped model.

    Avalanche tracks optimised parameters by name; a DDP wrapper prefixes every name with
    ``module.``, which would make a grown head look like a new parameter and leave the old
    one in the optimizer.
    """
    wrapped = strategy.model
    strategy.model = unwrap_ddp(wrapped)
    try:
        strategy.make_optimizer(**kwargs)
    finally:
        strategy.model = wrapped


def broadcast_decision(keep: bool) -> bool:
    """Rank 0's keep / prune decision, on every rank."""
    return bool(DistributedHelper.broadcast_object(bool(keep), src=0))


def any_rank(flag: bool) -> bool:
    """True on every rank if ``flag`` is true on any: a stop must be taken together."""
    if not is_distributed():
        return bool(flag)
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=DistributedHelper.make_device())
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())


def _grouped(tensors: Iterable[Tensor]) -> Dict[Tuple[torch.dtype, torch.device], List[Tensor]]:
    groups: Dict[Tuple[torch.dtype, torch.device], List[Tensor]] = defaultdict(list)
    for t in tensors:
        groups[(t.dtype, t.device)].append(t)
    return groups


@torch.no_grad()
def broadcast_tensors_(tensors: Iterable[Tensor], src: int = 0) -> None:
    """Overwrite ``tensors`` in place with rank ``src``'s values: one collective per dtype."""
    if not is_distributed():
        return
    for (dtype, _), group in _grouped(tensors).items():
        flat = torch.cat([t.detach().reshape(-1) for t in group])
        flat = flat.to(DistributedHelper.make_device())
        torch.distributed.broadcast(flat, src=src)
        offset = 0
        for t in group:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()


def broadcast_bank_(model: nn.Module) -> None:
    """Every rank takes rank 0's adapters, magnitudes, gate logits and head.

    DDP keeps them equal through identical averaged gradients; this makes it a guarantee
    before a decision is taken on them, whatever the optimizer's arithmetic did.
    """
    if not is_distributed():
        return
    state = unwrap_ddp(model).state_dict(keep_vars=True)
    tensors = [
        v for k, v in state.items()
        if torch.is_tensor(v) and v.is_floating_point()
        and (".adapters." in k or k.startswith(("gate.", "head.")))
    ]
    broadcast_tensors_(tensors)


def broadcast_state_(model: nn.Module, select: Callable[[str], bool]) -> None:
    """Every rank loads rank 0's ``state_dict`` entries whose key ``select`` accepts.

    Unlike :func:`broadcast_bank_` the entries travel as one pickled object, so they may
    differ in shape across ranks (a basis whose size came from an SVD threshold): the
    model's own load-state hooks regrow what needs it. Tensors go through the CPU, so a
    rank never receives another rank's CUDA device.
    """
    if not is_distributed():
        return
    module = unwrap_ddp(model)
    state = None
    if is_main_process():
        state = {
            k: v.detach().cpu() if torch.is_tensor(v) else v
            for k, v in module.state_dict().items()
            if select(k)
        }
    state = DistributedHelper.broadcast_object(state, src=0)
    if not is_main_process():
        module.load_state_dict(state, strict=False)


def refuse_unsupported_plugins(plugins: Iterable) -> None:
    """Raise if a plugin does not declare ``supports_distributed`` (Avalanche only warns)."""
    if not is_distributed():
        return
    unsupported = sorted(
        {type(p).__name__ for p in plugins if not protocol.supports_distributed(p)}
    )
    if unsupported:
        raise ValueError(
            f"plugins {unsupported} do not declare supports_distributed=True; they may "
            "diverge across ranks under torchrun. Declare it (class Foo(SupervisedPlugin, "
            "supports_distributed=True)) once the plugin is rank-safe, or drop them"
        )


def evaluate_every_sample(strategy) -> None:
    """Replace a sharded evaluation loader by one over the whole experience, on every rank.

    Avalanche 0.6's metrics are not reduced across processes: with the default sharded
    loader each rank (and rank 0's loggers) would report its own half of the test set.
    """
    loader = strategy.dataloader
    if not is_distributed() or not isinstance(loader, MultiDatasetDataLoader):
        return
    if not loader.distributed_sampling:
        return
    strategy.dataloader = SingleDatasetDataLoader(
        strategy.adapted_dataset,
        strategy.eval_mb_size,
        distributed_sampling=False,
        **loader.loader_kwargs,
    )


class RankSafeTemplateMixin:
    """For a ``SupervisedTemplate`` under torchrun: refuse plugins that are not rank-safe,
    and evaluate every sample on every rank. Put it before the template in the bases."""

    def _check_distributed_training_compatibility(self):
        """Refuse, rather than warn about, plugins that may diverge across ranks."""
        refuse_unsupported_plugins(self.plugins)
        return True

    def make_eval_dataloader(self, **kwargs):
        """Every rank evaluates the whole experience: Avalanche's metrics are per process."""
        super().make_eval_dataloader(**kwargs)
        evaluate_every_sample(self)


__getattr__ = _getattr_for(__name__)  # names this module had in 0.1.0, deprecated
