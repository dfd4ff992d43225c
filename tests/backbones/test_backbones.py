"""Tests of avalanche_litelora.backbones (offline, CPU, fast)."""
from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

timm = pytest.importorskip("timm")
from timm.models.vision_transformer import VisionTransformer  # noqa: E402

from avalanche_litelora.backbones import create_backbone, list_backbones, register_backbone  # noqa: E402
from avalanche_litelora.backbones import registry as registry_mod  # noqa: E402
from avalanche_litelora.backbones.vit_small28 import (  # noqa: E402
    VIT_SMALL28_CONFIG, weights_path)

PRETRAINED = ["vit_small28_fmnist", "vit_small28_mnist"]
VIT_NAMES = PRETRAINED + ["vit_small28_random"]
EMBED_DIM = VIT_SMALL28_CONFIG["embed_dim"]


@pytest.fixture(autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(min(2, old))
    yield
    torch.set_num_threads(old)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


# ----------------------------------------------------------------------------- registry

def test_registry_lists_names():
    names = list_backbones()
    assert set(VIT_NAMES + ["timm_local"]) <= set(names)
    assert names == sorted(names)
    assert list_backbones("vit_small28_*") == sorted(VIT_NAMES + [f"{n}_tokens" for n in VIT_NAMES])


def test_registry_rejects_unknown_name_clearly():
    with pytest.raises(ValueError) as exc:
        create_backbone("vit_small28_imagenet")
    msg = str(exc.value)
    assert "vit_small28_imagenet" in msg
    for name in VIT_NAMES + ["timm_local"]:
        assert name in msg  # the known names are listed


@pytest.mark.parametrize("name", VIT_NAMES + [f"{n}_tokens" for n in VIT_NAMES])
def test_vits_are_timm_models_loading_the_packaged_file(name, no_network):
    """timm's own create_model builds each name; pretrained=True reads the shipped file."""
    assert timm.is_model(name)
    pretrained = not name.startswith("vit_small28_random")
    assert timm.is_model_pretrained(name) == pretrained
    model = timm.create_model(name, pretrained=pretrained, num_classes=4)
    assert model.num_classes == 4 and model.pretrained_cfg["input_size"] == (1, 28, 28)
    if pretrained:
        base = name.replace("_tokens", "")
        assert model.pretrained_cfg["file"] == str(weights_path(base))
        ref = create_backbone(base).state_dict()  # pretrained by default
        for k, v in model.state_dict().items():
            if not k.startswith("head."):
                assert torch.equal(v, ref[k]), k
    else:
        with pytest.raises(ValueError, match="no pretrained weights"):
            timm.create_model(name, pretrained=True)
    # timm's data config follows the cfg: ToTensor() only
    assert timm.data.resolve_data_config(model=model)["mean"] == (0.0,)


def test_timm_backbone_name_cannot_be_taken():
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("vit_small28_fmnist")(lambda **kw: nn.Identity())


def test_register_backbone_decorator_and_name_clash():
    name = "_test_tiny_linear"
    try:
        @register_backbone(name)
        def tiny(num_classes=0, **kwargs):
            m = nn.Linear(4, num_classes or 4)
            m.num_features = 4
            return m

        assert name in list_backbones()
        assert create_backbone(name, num_classes=3).out_features == 3
        with pytest.raises(ValueError, match="already registered"):
            register_backbone(name)(lambda **kw: nn.Identity())
        register_backbone(name, overwrite=True)(lambda **kw: nn.Identity())
        assert isinstance(create_backbone(name), nn.Identity)
    finally:
        registry_mod._BACKBONES.pop(name, None)
    assert name not in list_backbones()


# ----------------------------------------------------------------------------- shipped ViTs

@pytest.mark.parametrize("name", PRETRAINED)
def test_shipped_weight_files(name):
    from safetensors import safe_open

    path = weights_path(name)
    assert path.is_file(), path
    assert path.stat().st_size < 5e6  # a few MB at most
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
        meta = f.metadata()
    assert not [k for k in keys if k.startswith("head.")], "classifier head must not be shipped"
    assert "blocks.0.attn.qkv.weight" in keys
    assert meta["pretrain_dataset"] == {"vit_small28_fmnist": "fashion_mnist", "vit_small28_mnist": "mnist"}[name]


@pytest.mark.parametrize("name", PRETRAINED)
def test_shipped_vit_loads_offline_and_gives_features(name, no_network):
    from safetensors.torch import load_file

    model = create_backbone(name, num_classes=0)
    assert isinstance(model, VisionTransformer)
    assert model.num_features == EMBED_DIM
    # the file's tensors are what the model holds
    sd = model.state_dict()
    shipped = load_file(str(weights_path(name)))
    assert set(shipped) == {k for k in sd if not k.startswith("head.")}
    for k, v in shipped.items():
        assert torch.equal(sd[k], v), k
    # LoRA targets blocks.*.attn.qkv: one fused Linear per block
    qkv = [m for n, m in model.named_modules() if n.endswith("attn.qkv")]
    assert len(qkv) == VIT_SMALL28_CONFIG["depth"]
    assert all(isinstance(m, nn.Linear) and m.out_features == 3 * EMBED_DIM for m in qkv)

    model.eval()
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        feats = model(x)
    assert feats.shape == (5, model.num_features)
    assert torch.isfinite(feats).all()

    # timm classifier API
    clf = create_backbone(name, num_classes=10).eval()
    with torch.no_grad():
        assert clf(x).shape == (5, 10)
        assert torch.allclose(clf.forward_head(clf.forward_features(x), pre_logits=True), feats, atol=1e-5)
        clf.reset_classifier(3)
        assert clf(x).shape == (5, 3)
        clf.reset_classifier(0)
        assert clf(x).shape == (5, clf.num_features)


def test_random_backbone_same_shape_and_seeded():
    a = create_backbone("vit_small28_random", seed=1)
    b = create_backbone("vit_small28_random", seed=1)
    c = create_backbone("vit_small28_random", seed=2)
    shipped = create_backbone("vit_small28_fmnist")
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in shipped.state_dict().items()}
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    assert not torch.equal(a.state_dict()["blocks.0.attn.qkv.weight"], c.state_dict()["blocks.0.attn.qkv.weight"])
    with pytest.raises(ValueError):
        create_backbone("vit_small28_random", pretrained=True)


def test_pretrained_refuses_architecture_change(tmp_path):
    with pytest.raises(ValueError, match="embed_dim"):
        create_backbone("vit_small28_mnist", embed_dim=64)
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        create_backbone("vit_small28_mnist", weights=tmp_path / "nope.safetensors")
    # a file missing a backbone tensor is refused although timm loads non-strictly
    from safetensors.torch import load_file, save_file
    partial = {k: v for k, v in load_file(str(weights_path("vit_small28_mnist"))).items() if k != "norm.weight"}
    save_file(partial, str(tmp_path / "partial.safetensors"))
    with pytest.raises(RuntimeError, match="norm.weight"):
        create_backbone("vit_small28_mnist", num_classes=10, weights=tmp_path / "partial.safetensors")
    # architecture-neutral kwargs are fine
    m = create_backbone("vit_small28_mnist", drop_path_rate=0.1, global_pool="avg").eval()
    assert m.num_features == EMBED_DIM
    with torch.no_grad():
        assert m(torch.rand(2, 1, 28, 28)).shape == (2, EMBED_DIM)


def test_shipped_weights_differ_from_random_init():
    rand = create_backbone("vit_small28_random", seed=0).state_dict()
    loaded = {name: create_backbone(name).state_dict() for name in PRETRAINED}
    for name, sd in loaded.items():
        for k, v in sd.items():
            if k.startswith("head."):
                continue
            assert not torch.allclose(v, rand[k]), f"{name}: {k} equals its random init"
        # LayerNorm weights start at 1: training moved them
        assert not torch.allclose(sd["norm.weight"], torch.ones_like(sd["norm.weight"]))
    a, b = (loaded[n] for n in PRETRAINED)
    assert not torch.allclose(a["blocks.0.attn.qkv.weight"], b["blocks.0.attn.qkv.weight"])


def _digits_28x28():
    """scikit-learn's bundled 8x8 digits, made MNIST-like: [0,1], 20x20 digit centred in 28x28."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False).clamp_(0, 1)
    x = F.pad(x, (4, 4, 4, 4))
    return x, d.target


def _probe_accuracy(model, x_tr, y_tr, x_te, y_te):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from threadpoolctl import threadpool_limits

    model.eval()
    with torch.no_grad():
        f_tr, f_te = model(x_tr).numpy(), model(x_te).numpy()
    with threadpool_limits(limits=1):  # avoid BLAS oversubscription on shared CPUs
        scaler = StandardScaler().fit(f_tr)
        clf = LogisticRegression(max_iter=2000).fit(scaler.transform(f_tr), y_tr)
        return clf.score(scaler.transform(f_te), y_te)


def test_pretrained_beats_random_init_on_digits_linear_probe():
    x, y = _digits_28x28()
    perm = np.random.RandomState(0).permutation(len(y))
    tr, te = perm[:400], perm[400:1000]
    args = (x[tr], y[tr], x[te], y[te])
    acc_pre = _probe_accuracy(create_backbone("vit_small28_mnist"), *args)
    acc_rand = _probe_accuracy(create_backbone("vit_small28_random", seed=0), *args)
    assert acc_pre >= acc_rand + 0.05, (acc_pre, acc_rand)


# ----------------------------------------------------------------------------- timm_local

def _save(state_dict, path):
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))
    else:
        torch.save(state_dict, path)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_timm_local_loads_checkpoint_written_here(tmp_path, suffix, no_network):
    torch.manual_seed(0)
    src = timm.create_model("test_vit", pretrained=False, img_size=32, num_classes=7)
    ref = src.state_dict()
    ckpt = tmp_path / f"tiny{suffix}"
    _save(ref, ckpt)

    model = create_backbone("timm_local", model_name="test_vit", checkpoint_path=ckpt, img_size=32, num_classes=7)
    sd = model.state_dict()
    assert set(sd) == set(ref)
    for k, v in ref.items():
        assert torch.equal(sd[k], v), k

    # different head size: backbone loaded, new head; num_classes=0 -> features
    feats_model = create_backbone("timm_local", model_name="test_vit", checkpoint_path=str(ckpt),
                                  img_size=32, num_classes=0)
    for k, v in feats_model.state_dict().items():
        assert torch.equal(v, ref[k]), k
    x = torch.rand(2, 3, 32, 32)
    src.eval(), feats_model.eval()
    with torch.no_grad():
        out = feats_model(x)
        assert out.shape == (2, feats_model.num_features)
        assert torch.allclose(out, src.forward_head(src.forward_features(x), pre_logits=True), atol=1e-5)
    m3 = create_backbone("timm_local", model_name="test_vit", checkpoint_path=ckpt, img_size=32, num_classes=3)
    assert m3.get_classifier().out_features == 3


def test_timm_local_missing_file_is_clear(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError) as exc:
        create_backbone("timm_local", model_name="test_vit", checkpoint_path=missing)
    assert str(missing) in str(exc.value)
    with pytest.raises(FileNotFoundError):
        create_backbone("timm_local", model_name="test_vit", checkpoint_path=tmp_path)  # a directory


def test_timm_local_rejects_unknown_model_and_mismatched_checkpoint(tmp_path):
    ckpt = tmp_path / "tiny.pth"
    torch.save(timm.create_model("test_vit", img_size=32).state_dict(), ckpt)
    with pytest.raises(ValueError, match="unknown timm model"):
        create_backbone("timm_local", model_name="not_a_timm_model", checkpoint_path=ckpt)
    with pytest.raises(ValueError, match="plain timm model name"):
        create_backbone("timm_local", model_name="hf-hub:timm/test_vit.r160_in1k", checkpoint_path=ckpt)
    with pytest.raises(RuntimeError, match="does not match"):
        create_backbone("timm_local", model_name="test_vit2", checkpoint_path=ckpt, img_size=32)
