import pytest
import torch

from avalanche_litelora.lora.layer import inject_lora
from avalanche_litelora.lora.layer import LoRALinear
from builders import MLP_TARGETS, tiny_mlp, tiny_vit


def test_default_targets_are_vit_qkv_on_q_and_v():
    vit = tiny_vit()
    layers = inject_lora(vit, rank=4)
    assert list(layers) == ["blocks.0.attn.qkv", "blocks.1.attn.qkv"]
    for layer in layers.values():
        assert isinstance(layer, LoRALinear) and set(layer.out_slices) == {"q", "v"}
    trainable = [n for n, p in vit.named_parameters() if p.requires_grad]
    assert trainable == []  # no adapter yet; everything else frozen


def test_glob_and_suffix_patterns():
    mlp = tiny_mlp()
    assert list(inject_lora(mlp, target_modules=["features.0", "features.*.0"], rank=2)) == MLP_TARGETS


def test_no_match_lists_linear_modules_and_leaves_model_untouched():
    vit = tiny_vit()
    before = {k: v.clone() for k, v in vit.state_dict().items()}
    with pytest.raises(ValueError) as err:
        inject_lora(vit, target_modules=["nope"], rank=2)
    assert "blocks.0.attn.qkv" in str(err.value) and "blocks.0.mlp.fc1" in str(err.value)
    assert not any(isinstance(m, LoRALinear) for m in vit.modules())
    assert all(p.requires_grad for p in vit.parameters())
    assert all(torch.equal(before[k], v) for k, v in vit.state_dict().items())


def test_rank_too_large_for_some_layer_is_refused_before_any_swap():
    vit = tiny_vit()
    with pytest.raises(ValueError, match="rank"):
        inject_lora(vit, target_modules=["qkv"], rank=33)
    assert not any(isinstance(m, LoRALinear) for m in vit.modules())


def test_duplicate_targets_are_refused():
    with pytest.raises(ValueError, match="duplicate"):
        inject_lora(tiny_vit(), target_modules=["qkv", "qkv"], rank=2)


def test_auto_falls_back_and_an_explicit_qkv_never_does():
    """``"auto"`` is the default; ``("qkv",)`` typed by a user or ``["qkv"]`` from JSON is a list
    like any other, whether or not it equals the first choice "auto" tries."""
    from avalanche_litelora.adapters.inject import AUTO_TARGETS, find_target_modules

    assert set(MLP_TARGETS) <= set(find_target_modules(tiny_mlp(), AUTO_TARGETS))  # every Linear
    for explicit in (("qkv",), ["qkv"]):
        with pytest.raises(ValueError, match="no nn.Linear"):
            find_target_modules(tiny_mlp(), explicit)
    vit = tiny_vit()
    assert find_target_modules(vit, ("qkv",)) == find_target_modules(vit, ["qkv"]) == find_target_modules(vit, "auto")
