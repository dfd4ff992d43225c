"""A small timm ``VisionTransformer`` for 28x28 grayscale images, with weights
pretrained offline and shipped in ``backbones/weights/``.

Registered with timm (``timm.create_model(name, pretrained=True)`` loads offline)
------------------------------------------------------------------------------
``vit_small28_fmnist``
    pretrained on the Fashion-MNIST train split; use it for MNIST streams.
``vit_small28_mnist``
    pretrained on the MNIST train split; use it for Fashion-MNIST streams.
``vit_small28_random``
    same architecture, random init (for comparisons; ``seed=`` makes it
    reproducible).
``*_tokens``
    the same three with every final token read out (:class:`TokenReadoutViT`).

Each name has a timm ``pretrained_cfg`` whose ``file`` is the packaged safetensors
file, so timm's own loader reads it; ``create_backbone(name)`` is
``timm.create_model(name, pretrained=<has weights>)``. Extra keyword arguments of the
entrypoints: ``seed`` (reproducible init without touching the global RNG) and
``weights`` (another file, same as ``pretrained_cfg_overlay=dict(file=...)``).

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

The weights were produced by ``tools/pretrain_vit_small28.py`` (fixed
seed); the temporary 10-way training head is *not* shipped: the models are
returned with a freshly initialised head (``num_classes > 0``) or none
(``num_classes=0``, the model then returns ``(B, num_features)`` features).
Nothing here touches the network.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs
from timm.models.vision_transformer import VisionTransformer

from .registry import register_timm_backbone

__all__ = [
    "VIT_SMALL28_CONFIG",
    "INPUT_MEAN",
    "INPUT_STD",
    "WEIGHTS_DIR",
    "WEIGHT_FILES",
    "build_vit_small28",
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


def _cfg(base: str) -> Dict[str, Any]:
    # timm's pretrained_cfg: the packaged file, and what timm.data.resolve_data_config needs.
    file = WEIGHTS_DIR / WEIGHT_FILES[base] if base in WEIGHT_FILES else None
    return dict(
        file=str(file) if file is not None else None, num_classes=0, input_size=(1, 28, 28),
        mean=INPUT_MEAN, std=INPUT_STD, interpolation="bilinear", crop_pct=1.0,
        first_conv="patch_embed.proj", classifier="head",
        description=f"pretrained on {_PRETRAIN_DATASET[base]}" if base in WEIGHT_FILES else "random init",
    )


_BASES = ("vit_small28_fmnist", "vit_small28_mnist", "vit_small28_random")
default_cfgs = generate_default_cfgs({b + s: _cfg(b) for b in _BASES for s in ("", "_tokens")})


def _check_keys(state_dict: Dict[str, Any], model: torch.nn.Module) -> Dict[str, Any]:
    """timm loads non-strictly when the head size differs from the file's (0): make sure
    only the classifier is left out."""
    own = model.state_dict().keys()
    missing = [k for k in own if k not in state_dict and not k.startswith("head.")]
    unexpected = [k for k in state_dict if k not in own]
    if missing or unexpected:
        raise RuntimeError(
            f"Weights in {model.pretrained_cfg.get('file')} do not match the model: "
            f"missing keys {missing}, unexpected keys {unexpected}"
        )
    return state_dict


def _create(variant: str, pretrained: bool = False, weights: Optional[Union[str, Path]] = None,
            seed: Optional[int] = None, **kwargs) -> VisionTransformer:
    overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
    if weights is not None and pretrained:
        overlay["file"] = str(weights)
    if pretrained:
        file = overlay.get("file") or default_cfgs[variant].default.file
        if not file:
            raise ValueError(f"{variant} has no pretrained weights; use vit_small28_fmnist or vit_small28_mnist")
        arch = {**VIT_SMALL28_CONFIG, "fc_norm": False}
        bad = {k: v for k, v in kwargs.items() if k in _ARCH_KEYS and v != arch[k]}
        if bad:
            raise ValueError(
                f"{variant}: cannot change architecture arguments {bad} when loading pretrained "
                f"weights (architecture is {VIT_SMALL28_CONFIG}); use pretrained=False"
            )
        if not Path(file).is_file():
            raise FileNotFoundError(
                f"Backbone weights not found: {file}. They ship with the package "
                f"(package data 'backbones/weights/*.safetensors'); regenerate them with "
                f"tools/pretrain_vit_small28.py if the file was removed."
            )
    # fc_norm=False keeps the final LayerNorm as ``norm`` (pre-pooling) for every
    # global_pool, so e.g. global_pool="avg" still matches the shipped weights.
    args = {**VIT_SMALL28_CONFIG, "fc_norm": False, **kwargs}
    model_cls = READOUTS["tokens" if variant.endswith("_tokens") else "cls"]
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        return build_model_with_cfg(model_cls, variant, pretrained, pretrained_cfg_overlay=overlay,
                                    pretrained_filter_fn=_check_keys, **args)


def _entrypoint(variant: str):
    def fn(pretrained: bool = False, **kwargs) -> VisionTransformer:
        return _create(variant, pretrained, **kwargs)

    fn.__name__ = fn.__qualname__ = variant
    fn.__doc__ = f"``{variant}`` (see the module docstring); ``num_classes=0`` (default) -> features."
    return register_timm_backbone(fn)


vit_small28_fmnist = _entrypoint("vit_small28_fmnist")
vit_small28_mnist = _entrypoint("vit_small28_mnist")
vit_small28_random = _entrypoint("vit_small28_random")
vit_small28_fmnist_tokens = _entrypoint("vit_small28_fmnist_tokens")
vit_small28_mnist_tokens = _entrypoint("vit_small28_mnist_tokens")
vit_small28_random_tokens = _entrypoint("vit_small28_random_tokens")
