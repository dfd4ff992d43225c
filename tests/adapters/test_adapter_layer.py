"""The base adapter layer: LoRA and Share are siblings, and a subclass needs only ``_factors``."""

import pytest
import torch
from torch import nn

from avalanche_litelora import AdapterLayer, LoRALinear, ShareLinear, inject_lora


class _FixedFactors(AdapterLayer):
    """An adapter kind the package does not ship: fixed random factors, scale 0.5."""

    def add(self, name: str, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        adapter = nn.Module()
        adapter.A = nn.ParameterDict({k: nn.Parameter(torch.randn(self.rank, self.in_features, generator=g, dtype=self.weight.dtype),
                                                      requires_grad=False) for k in self.out_slices})
        adapter.B = nn.ParameterDict({k: nn.Parameter(torch.randn(e - s, self.rank, generator=g, dtype=self.weight.dtype),
                                                      requires_grad=False) for k, (s, e) in self.out_slices.items()})
        self.adapters[name] = adapter

    def _factors(self, name, key):
        adapter = self.adapters[name]
        return adapter.A[key], adapter.B[key], 0.5


def test_lora_and_share_layers_are_siblings_under_one_base():
    assert issubclass(LoRALinear, AdapterLayer) and issubclass(ShareLinear, AdapterLayer)
    assert not issubclass(ShareLinear, LoRALinear) and not issubclass(LoRALinear, ShareLinear)
    assert not hasattr(ShareLinear, "add_adapter")  # a Share task is coefficients, opened by open_task
    assert LoRALinear.missing_gate == 1.0 and ShareLinear.missing_gate == 0.0


@pytest.mark.parametrize("form", ["dense", "lowrank"])
def test_a_subclass_defining_only_its_factors_gets_forward_and_exact_merge(form):
    torch.manual_seed(0)
    base = nn.Linear(8, 6).double()
    layer = _FixedFactors(base, rank=2, out_slices={"q": (0, 2), "v": (4, 6)}).double()
    layer.add("a", seed=1)
    layer.add("b", seed=2)
    layer.gate_values = {"a": torch.tensor(0.3, dtype=torch.float64)}  # "b" has no value: open
    layer.bank_form = form
    x = torch.randn(5, 8, dtype=torch.float64)
    expected = base(x) + x @ (0.3 * layer.get_delta_weight("a") + layer.get_delta_weight("b")).t()
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)
    weight = base.weight.detach().clone()
    layer.merge()
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)
    layer.unmerge()
    assert torch.equal(base.weight, weight)  # bit for bit


def test_inject_takes_any_adapter_layer_and_refuses_anything_else():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(TypeError, match="AdapterLayer subclass"):
        inject_lora(model, target_modules=["0"], rank=2, layer_type=nn.Linear)
    assert isinstance(model[0], nn.Linear) and not isinstance(model[0], AdapterLayer)
    wrappers = inject_lora(model, target_modules=["0"], rank=2, layer_type=_FixedFactors)
    assert isinstance(wrappers["0"], _FixedFactors)
    with pytest.raises(ValueError, match="already holds adapter layers"):
        inject_lora(model, target_modules=["2"], rank=1, layer_type=ShareLinear)
