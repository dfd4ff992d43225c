"""``add_adapter(generator=...)``: an adapter's A drawn from a generator of its own."""

import math

import pytest
import torch
from torch import nn

from avalanche_litelora.lora.layer import LoRALinear, LowRankAdapter


def _layer() -> LoRALinear:
    return LoRALinear(nn.Linear(12, 9), rank=3, out_slices={"q": (0, 3), "v": (6, 9)})


def test_same_generator_seed_gives_same_A_whatever_the_global_rng_did():
    first = _layer().add_adapter("a", generator=torch.Generator().manual_seed(7))
    torch.rand(1000)  # moves the global RNG only
    second = _layer().add_adapter("a", generator=torch.Generator().manual_seed(7))
    for key in ("q", "v"):
        assert torch.equal(first.A[key], second.A[key])
    assert not torch.equal(first.A["q"], first.A["v"])  # slices draw in turn


def test_generator_leaves_global_rng_untouched_and_matches_kaiming_bound():
    state = torch.get_rng_state()
    adapter = LowRankAdapter(400, {"out": 5}, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), state)
    bound = 1.0 / math.sqrt(400)  # kaiming_uniform_(a=sqrt(5)) on fan_in 400
    a = adapter.A["out"]
    assert a.abs().max() <= bound and a.abs().max() > 0.9 * bound


def test_default_is_the_global_rng_as_before():
    torch.manual_seed(3)
    expected = torch.empty(3, 12)
    nn.init.kaiming_uniform_(expected, a=math.sqrt(5))
    layer = _layer()  # building the Linear draws from the global RNG too
    torch.manual_seed(3)
    adapter = layer.add_adapter("a")
    assert torch.equal(adapter.A["q"], expected)


def test_bad_generator_is_refused_before_anything_changes():
    layer = _layer()
    with pytest.raises(TypeError, match="generator"):
        layer.add_adapter("a", generator=3)
    assert "a" not in layer.adapters
