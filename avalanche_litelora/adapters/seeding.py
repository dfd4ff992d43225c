"""Random draws of the model's own, so training never depends on what else used the global RNG.

Avalanche builds head rows, and this package builds adapters, while a stream runs; drawn from
torch's global generator, their values would depend on how many numbers evaluation (its
data loaders, a head grown for a test class) took from it before. Each draw here instead
comes from a generator seeded by the model's seed and the name of what is drawn, so a head
row or an adapter gets the same values whenever, and however often, it is built.
"""

from __future__ import annotations

import hashlib
import numbers
from contextlib import contextmanager
from typing import Iterator, Optional

import torch


def check_seed(seed, name: str = "seed") -> Optional[int]:
    """``seed`` if it is ``None`` or a non-negative integer, else a ValueError naming ``name``."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"{name} must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def default_seed() -> int:
    """The seed torch's global generator was last seeded with (``torch.manual_seed``)."""
    return int(torch.initial_seed())


def derive_seed(seed: int, *parts) -> int:
    """A 63-bit seed for one named draw, e.g. ``derive_seed(s, "adapter", 3)``."""
    text = ":".join(str(p) for p in (int(seed),) + parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def generator_for(seed: int, *parts) -> torch.Generator:
    """A CPU generator of its own for one named draw."""
    return torch.Generator().manual_seed(derive_seed(seed, *parts))


@contextmanager
def global_rng_untouched() -> Iterator[None]:
    """Whatever runs inside may draw from torch's CPU generator; its state is put back after."""
    with torch.random.fork_rng(devices=[]):
        yield


@torch.no_grad()
def seeded_linear_rows_(linear: torch.nn.Linear, rows: range, seed: int, *parts) -> None:
    """Re-draw the given output rows as ``nn.Linear`` does (U(-1/sqrt(fan_in), +)), row by row.

    Row ``c`` comes from its own generator, so its values do not depend on when the layer
    grew to hold it, nor on how many rows were added with it.
    """
    bound = 1.0 / max(1, linear.in_features) ** 0.5
    for row in rows:
        g = generator_for(seed, *parts, row)
        weight = (torch.rand(linear.in_features, generator=g, dtype=torch.float64) * 2 - 1) * bound
        linear.weight[row].copy_(weight.to(linear.weight.dtype))
        if linear.bias is not None:
            bias = (torch.rand((), generator=g, dtype=torch.float64) * 2 - 1) * bound
            linear.bias[row].copy_(bias.to(linear.bias.dtype))
