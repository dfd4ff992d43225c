"""The input representations InfLoRA designs from: ``mean(x x^T)`` at every adapted layer's input.

The official code accumulates, inside each attention block, the running mean of ``x^T x``
over every token of the task's training data, with the network as it stands
(``models/vit_inflora.py`` L236-238; called before training at ``methods/inflora.py``
L116-119 and after it at L188-191). Here forward pre-hooks on the adapter layers collect the
same quantity from any backbone, one pass over the experience's training data without
gradients. The pass must not change the run: the global random generators (the data
loader's shuffle draws from them) are put back afterwards, and the model's mode is restored.
"""

from __future__ import annotations

from typing import Dict, Iterable

import torch
from torch import Tensor, nn

from avalanche_litelora.adapters.layer import AdapterLayer
from avalanche_litelora.training.checkpoint import capture_rng_state, restore_rng_state


def _rows(layer: AdapterLayer, x: Tensor) -> Tensor:
    """The input rows the layer's adapters see: tokens, or the strided pixels of a 1x1 conv."""
    if layer.is_conv:
        stride = layer.base.stride
        x = x[:, :, :: stride[0], :: stride[1]].movedim(1, -1)
    return x.reshape(-1, layer.in_features)


class _Accumulator:
    """Running ``sum x x^T`` (float64) and row count of one layer's inputs."""

    def __init__(self, layer: AdapterLayer):
        self.layer = layer
        self.sum = torch.zeros(layer.in_features, layer.in_features, dtype=torch.float64)
        self.rows = 0

    def __call__(self, module, args):
        rows = _rows(self.layer, args[0].detach()).to(torch.float64)
        self.sum += (rows.T @ rows).cpu()
        self.rows += rows.shape[0]


def _all_ranks_sum(tensor: Tensor) -> Tensor:
    """Under torchrun every rank sees its shard: the representation is the sum over all ranks."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        backend = torch.distributed.get_backend()
        device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
        moved = tensor.to(device)
        torch.distributed.all_reduce(moved)
        return moved.cpu()
    return tensor


@torch.no_grad()
def input_representations(model: nn.Module, layers: Dict[str, AdapterLayer], batches: Iterable,
                          device) -> Dict[str, Tensor]:
    """``{layer name: mean over rows of x x^T}`` on the inputs ``batches`` carry (their first item).

    ``model`` is the adapter model; its :meth:`features` runs the adapted backbone only,
    so the head (and task labels) play no part.
    """
    accumulators = {name: _Accumulator(layer) for name, layer in layers.items()}
    handles = [layer.register_forward_pre_hook(accumulators[name]) for name, layer in layers.items()]
    was_training = model.training
    rng = capture_rng_state()
    try:
        model.eval()
        for batch in batches:
            x = batch[0] if isinstance(batch, (list, tuple)) else batch
            model.features(x.to(device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
        restore_rng_state(rng)
    out = {}
    for name, acc in accumulators.items():
        total = _all_ranks_sum(torch.cat([acc.sum.reshape(-1), torch.tensor([float(acc.rows)], dtype=torch.float64)]))
        rows = max(float(total[-1]), 1.0)
        out[name] = total[:-1].reshape(acc.sum.shape) / rows
    return out
