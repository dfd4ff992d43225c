"""A small timm ``VisionTransformer`` for 28x28 grayscale images, with weights
pretrained offline and shipped in ``backbones/weights/``.

Registered backbones
--------------------
``vit_small28_fmnist``
    pretrained on the Fashion-MNIST train split; use it for MNIST streams.
``vit_small28_mnist``
    pretrained on the MNIST train split; use it for Fashion-MNIST streams.
``vit_small28_random``
    same architecture, random init (for comparisons; ``seed=`` makes it
    reproducible).

Architecture (:data:`VIT_SMALL28_CONFIG`): 7x7 patches (16 tokens + class
token), embed_dim 96, depth 6, 3 heads, MLP ratio 4, class-token pooling;
about 0.68 M parameters (2.7 MB float32). Every block uses timm's standard
``Attention`` with a fused ``qkv`` ``nn.Linear(96, 288)``, so LoRA can target
``blocks.*.attn.qkv``.

Input transform
---------------
Inputs are ``torchvision.transforms.ToTensor()`` images, i.e. float tensors of
shape ``(B, 1, 28, 28)`` in ``[0, 1]`` with **no** mean/std normalisation
(:data:`INPUT_MEAN` = 0, :data:`INPUT_STD` = 1). Feed the same transform.

The weights were produced by ``benchmarks/pretrain_vit_small28.py`` (fixed
seed); the temporary 10-way training head is *not* shipped: the models are
returned with a freshly initialised head (``num_classes > 0``) or none
(``num_classes=0``, the model then returns ``(B, num_features)`` features).
Nothing here touches the network.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
from timm.models.vision_transformer import VisionTransformer

from .registry import register_backbone

__all__ = [
    "VIT_SMALL28_CONFIG",
    "INPUT_MEAN",
    "INPUT_STD",
    "WEIGHTS_DIR",
    "WEIGHT_FILES",
    "build_vit_small28",
    "load_backbone_weights",
    "weights_path",
    "vit_small28_fmnist",
    "vit_small28_mnist",
    "vit_small28_random",
    "TokenReadoutViT",
    "READOUTS",
    "vit_small28_fmnist_tokens",
    "vit_small28_mnist_tokens",
    "vit_small28_random_tokens",
]

#: Architecture of all ``vit_small28_*`` backbones (kwargs of timm's VisionTransformer).
VIT_SMALL28_CONFIG: Dict[str, Any] = dict(
    img_size=28,
    patch_size=7,
    in_chans=1,
    embed_dim=96,
    depth=6,
    num_heads=3,
    mlp_ratio=4.0,
    qkv_bias=True,
    class_token=True,
    global_pool="token",
)

#: Input normalisation the weights were trained with: ``ToTensor()`` only ([0, 1] range).
INPUT_MEAN = (0.0,)
INPUT_STD = (1.0,)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WEIGHT_FILES = {
    "vit_small28_fmnist": "vit_small28_fmnist.safetensors",
    "vit_small28_mnist": "vit_small28_mnist.safetensors",
}
_PRETRAIN_DATASET = {"vit_small28_fmnist": "fashion_mnist", "vit_small28_mnist": "mnist"}

# Keys that change parameter shapes / names: cannot be overridden when loading weights.
_ARCH_KEYS = ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads",
              "mlp_ratio", "qkv_bias", "class_token", "fc_norm")


def weights_path(name: str) -> Path:
    """Path of the shipped safetensors file of pretrained backbone ``name``."""
    try:
        return WEIGHTS_DIR / WEIGHT_FILES[name]
    except KeyError:
        raise ValueError(
            f"No shipped weights for {name!r}; available: {', '.join(sorted(WEIGHT_FILES))}"
        ) from None


def _pretrained_cfg(name: str, file: Optional[Path]) -> Dict[str, Any]:
    # Mirrors timm's pretrained_cfg so timm.data.resolve_data_config(model=...) works.
    return dict(
        architecture=name,
        file=str(file) if file is not None else None,
        num_classes=0,
        input_size=(1, 28, 28),
        mean=INPUT_MEAN,
        std=INPUT_STD,
        interpolation="bilinear",
        crop_pct=1.0,
        crop_mode="center",
        first_conv="patch_embed.proj",
        classifier="head",
        pretrain_dataset=_PRETRAIN_DATASET.get(name),
    )


class TokenReadoutViT(VisionTransformer):
    """A ViT whose features are all its final tokens (class + patches), flattened.

    On 28x28 digits the class token of a small ViT pretrained on another dataset keeps too
    little: its frozen linear probe falls below raw pixels, while the flattened tokens of the
    same frozen network beat them (README, "Backbones"). The weights are the same; only
    the read-out (and so the head's width, 17 x 96 = 1632) changes.
    """

    def __init__(self, num_classes: int = 0, **kwargs):
        super().__init__(num_classes=0, **kwargs)
        tokens = self.patch_embed.num_patches + self.num_prefix_tokens
        self.num_features = self.head_hidden_size = tokens * self.embed_dim
        self.reset_classifier(num_classes)

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        if global_pool not in (None, ""):
            raise ValueError(f"a token read-out has no pooling, got global_pool={global_pool!r}")
        self.num_classes = num_classes
        self.head = torch.nn.Linear(self.num_features, num_classes) if num_classes > 0 else torch.nn.Identity()

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.fc_norm(x).flatten(1))
        return x if pre_logits else self.head(x)


#: Read-outs of the backbone's features: the class token (timm's default) or every token.
READOUTS = {"cls": VisionTransformer, "tokens": TokenReadoutViT}


def build_vit_small28(num_classes: int = 0, seed: Optional[int] = None, readout: str = "cls",
                      **kwargs) -> VisionTransformer:
    """Randomly initialised ViT with :data:`VIT_SMALL28_CONFIG` (kwargs override it).

    ``seed`` makes the initialisation reproducible without touching the global RNG;
    ``readout`` is one of :data:`READOUTS`.
    """
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {sorted(READOUTS)}, got {readout!r}")
    # fc_norm=False keeps the final LayerNorm as ``norm`` (pre-pooling) for every
    # global_pool, so e.g. global_pool="avg" still matches the shipped weights.
    cfg = {**VIT_SMALL28_CONFIG, "fc_norm": False, **kwargs, "num_classes": num_classes}
    cls = READOUTS[readout]
    if seed is None:
        return cls(**cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(**cfg)


def load_backbone_weights(model: torch.nn.Module, path: Union[str, Path]) -> torch.nn.Module:
    """Load a backbone-only safetensors file into ``model`` (in place).

    All keys of the file must be consumed and only classifier (``head.*``)
    parameters may be left out; anything else raises ``RuntimeError``.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Backbone weights not found: {path}. They ship with the package "
            f"(package data 'backbones/weights/*.safetensors'); regenerate them with "
            f"benchmarks/pretrain_vit_small28.py if the file was removed."
        )
    state_dict = load_file(str(path), device="cpu")
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise RuntimeError(f"Weights in {path} do not fit the model: {e}") from e
    missing = [k for k in result.missing_keys if not k.startswith("head.")]
    if missing or result.unexpected_keys:
        raise RuntimeError(
            f"Weights in {path} do not match the model: missing keys {missing}, "
            f"unexpected keys {list(result.unexpected_keys)}"
        )
    return model


def _create(name: str, num_classes: int, pretrained: bool, weights: Optional[Union[str, Path]],
            seed: Optional[int], kwargs: Dict[str, Any], readout: str = "cls") -> VisionTransformer:
    if pretrained:
        arch = {**VIT_SMALL28_CONFIG, "fc_norm": False}
        bad = {k: v for k, v in kwargs.items() if k in _ARCH_KEYS and v != arch[k]}
        if bad:
            raise ValueError(
                f"{name}: cannot change architecture arguments {bad} when loading pretrained "
                f"weights (architecture is {VIT_SMALL28_CONFIG}); use pretrained=False"
            )
    model = build_vit_small28(num_classes=num_classes, seed=seed, readout=readout, **kwargs)
    file = None
    if pretrained:
        file = Path(weights) if weights is not None else weights_path(name.replace("_tokens", ""))
        load_backbone_weights(model, file)
    model.pretrained_cfg = _pretrained_cfg(name, file)
    model.default_cfg = model.pretrained_cfg
    return model


@register_backbone("vit_small28_fmnist")
def vit_small28_fmnist(num_classes: int = 0, pretrained: bool = True,
                       weights: Optional[Union[str, Path]] = None, seed: Optional[int] = None,
                       **kwargs) -> VisionTransformer:
    """ViT pretrained on Fashion-MNIST (for MNIST streams). ``num_classes=0`` -> features.

    ``weights`` overrides the shipped file; ``seed`` seeds the random init of the
    head (and of everything when ``pretrained=False``); other kwargs (e.g.
    ``drop_path_rate``, ``global_pool``) go to timm's ``VisionTransformer``.
    """
    return _create("vit_small28_fmnist", num_classes, pretrained, weights, seed, kwargs)


@register_backbone("vit_small28_mnist")
def vit_small28_mnist(num_classes: int = 0, pretrained: bool = True,
                      weights: Optional[Union[str, Path]] = None, seed: Optional[int] = None,
                      **kwargs) -> VisionTransformer:
    """ViT pretrained on MNIST (for Fashion-MNIST streams). ``num_classes=0`` -> features."""
    return _create("vit_small28_mnist", num_classes, pretrained, weights, seed, kwargs)


@register_backbone("vit_small28_random")
def vit_small28_random(num_classes: int = 0, seed: Optional[int] = None, **kwargs) -> VisionTransformer:
    """Same architecture as the pretrained ``vit_small28_*``, random init (for comparisons)."""
    if kwargs.pop("pretrained", False):
        raise ValueError("vit_small28_random has no pretrained weights; use vit_small28_fmnist or vit_small28_mnist")
    return _create("vit_small28_random", num_classes, False, None, seed, kwargs)


def _token_variant(base: str, pretrained_default: bool):
    name = f"{base}_tokens"

    def constructor(num_classes: int = 0, pretrained: bool = pretrained_default,
                    weights: Optional[Union[str, Path]] = None, seed: Optional[int] = None,
                    **kwargs) -> VisionTransformer:
        if pretrained and not pretrained_default:
            raise ValueError(f"{name} has no pretrained weights")
        return _create(name, num_classes, pretrained, weights, seed, kwargs, readout="tokens")

    constructor.__name__ = name
    constructor.__doc__ = f"``{base}`` with every final token read out (:class:`TokenReadoutViT`)."
    return register_backbone(name)(constructor)


vit_small28_fmnist_tokens = _token_variant("vit_small28_fmnist", True)
vit_small28_mnist_tokens = _token_variant("vit_small28_mnist", True)
vit_small28_random_tokens = _token_variant("vit_small28_random", False)
