import pytest
import torch
from torch import nn

from avalanche_litelora.lora.layer import LoRALinear, qkv_slices


def _trained_adapter(layer: LoRALinear, name: str, seed: int = 0) -> None:
    """Give an adapter a non-zero B, as training would."""
    layer.add_adapter(name)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for b in layer.adapters[name].B.values():
            b.copy_(torch.randn(b.shape, generator=g))


def test_new_adapter_starts_as_identity_update():
    base = nn.Linear(6, 5)
    layer = LoRALinear(base, rank=2)
    x = torch.randn(3, 6)
    expected = base(x)
    layer.add_adapter("a")
    assert torch.equal(layer(x), expected)  # B starts at zero
    assert layer.adapters["a"].A["out"].abs().sum() > 0  # A is random


def test_forward_matches_delta_weight_and_gate_scales_it():
    base = nn.Linear(6, 5)
    layer = LoRALinear(base, rank=2)
    _trained_adapter(layer, "a")
    x = torch.randn(4, 6)
    delta = layer.get_delta_weight("a")
    torch.testing.assert_close(layer(x), base(x) + x @ delta.t())
    layer.gate_values = {"a": torch.tensor(0.0)}
    torch.testing.assert_close(layer(x), base(x))
    layer.gate_values = {"a": torch.tensor(0.5)}
    torch.testing.assert_close(layer(x), base(x) + 0.5 * x @ delta.t())


def test_qkv_adapter_touches_q_and_v_slices_only():
    dim = 8
    base = nn.Linear(dim, 3 * dim)
    layer = LoRALinear(base, rank=2, out_slices=qkv_slices(base))
    _trained_adapter(layer, "a")
    x = torch.randn(2, 5, dim)
    diff = layer(x) - base(x)
    assert diff[..., :dim].abs().max() > 0
    assert torch.equal(diff[..., dim : 2 * dim], torch.zeros_like(diff[..., dim : 2 * dim]))
    assert diff[..., 2 * dim :].abs().max() > 0
    assert set(layer.adapters["a"].A.keys()) == {"q", "v"}


def test_direction_form_is_sd_lora_and_preserves_the_update():
    layer = LoRALinear(nn.Linear(6, 5), rank=3)
    _trained_adapter(layer, "a")
    x = torch.randn(4, 6)
    before = layer(x)
    adapter = layer.adapters["a"]
    adapter.to_direction_form()
    torch.testing.assert_close(layer(x), before)
    a, b, alpha = adapter.A["out"], adapter.B["out"], adapter.magnitude["out"]
    direction = b @ a / (b.norm() * a.norm())
    torch.testing.assert_close(layer.get_delta_weight("a"), alpha * direction)
    with torch.no_grad():  # the magnitude alone scales the update once frozen
        alpha.mul_(2.0)
    torch.testing.assert_close(layer(x) - layer.base(x), 2.0 * (before - layer.base(x)))


def test_merge_unmerge_agree_and_restore_weight():
    base = nn.Linear(6, 5)
    layer = LoRALinear(base, rank=2)
    _trained_adapter(layer, "a", 0)
    _trained_adapter(layer, "b", 1)
    layer.gate_values = {"a": torch.tensor(1.0), "b": torch.tensor(0.0)}
    original = base.weight.detach().clone()
    x = torch.randn(4, 6)
    unmerged = layer(x)
    layer.merge()
    assert layer.merged
    torch.testing.assert_close(layer(x), unmerged)
    layer.unmerge()
    assert torch.equal(base.weight, original)  # bit for bit
    torch.testing.assert_close(layer(x), unmerged)


def test_delete_adapter_removes_its_tensors():
    layer = LoRALinear(nn.Linear(6, 5), rank=2)
    layer.add_adapter("a")
    layer.add_adapter("b")
    n_before = len(layer.state_dict())
    layer.delete_adapter("a")
    assert list(layer.adapters) == ["b"]
    assert not any(".a." in k for k in layer.state_dict())
    assert len(layer.state_dict()) < n_before


@pytest.mark.parametrize("rank", [0, -1, 7, 2.5, True])
def test_bad_rank_is_refused(rank):
    base = nn.Linear(6, 5)
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(base, rank=rank)
    assert base.weight.requires_grad  # untouched


def test_base_layer_is_frozen_and_registered():
    base = nn.Linear(6, 5)
    layer = LoRALinear(base, rank=2)
    layer.add_adapter("a")
    assert not base.weight.requires_grad
    keys = set(layer.state_dict())
    assert {"base.weight", "adapters.a.A.out", "adapters.a.B.out", "adapters.a.magnitude.out"} <= keys


@pytest.mark.parametrize("stride", [1, 2])
def test_pointwise_conv_adapter_matches_its_delta_weight_and_merges(stride):
    conv = nn.Conv2d(6, 8, kernel_size=1, stride=stride)
    layer = LoRALinear(conv, rank=2)
    _trained_adapter(layer, "a")
    x = torch.randn(2, 6, 5, 5)
    delta = layer.get_delta_weight("a")
    expected = nn.functional.conv2d(x, conv.weight + delta[:, :, None, None], conv.bias, stride=stride)
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)
    original = conv.weight.detach().clone()
    layer.merge()
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)
    layer.unmerge()
    assert torch.equal(conv.weight, original)


def test_other_convolutions_are_refused():
    with pytest.raises(TypeError, match="1x1"):
        LoRALinear(nn.Conv2d(6, 8, kernel_size=3), rank=2)
    with pytest.raises(TypeError, match="1x1"):
        LoRALinear(nn.Conv2d(6, 6, kernel_size=1, groups=6), rank=2)
