"""The 224-pixel ViT transforms of the LoRA continual-learning papers, with timm's statistics.

Geometry follows the SD-LoRA / LiteLoRA code (PyCIL's ``build_transform``): training takes
``RandomResizedCrop(224, scale=(0.05, 1), ratio=(3/4, 4/3))`` and a horizontal flip;
evaluation resizes the short side to 256 (bicubic) and centre-crops 224. *Choice:* the
reference code feeds [0, 1] pixels; we normalise with the statistics timm's pretrained
config gives the backbone (mean = std = 0.5 for ``vit_base_patch16_224.augreg_in21k``),
because that is what the weights were trained with.
"""

from __future__ import annotations

from typing import Sequence, Tuple

from torchvision import transforms

#: timm model + tag whose pretrained config gives the normalisation (ImageNet-21k ViT-B/16).
DEFAULT_PRETRAINED = "vit_base_patch16_224.augreg_in21k"


def pretrained_statistics(model_name: str = DEFAULT_PRETRAINED) -> Tuple[Sequence[float], Sequence[float]]:
    """(mean, std) from timm's pretrained config of ``model_name`` (no weights are read)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(model_name)
    if cfg is None:
        raise ValueError(f"timm has no pretrained config for {model_name!r}")
    return tuple(cfg.mean), tuple(cfg.std)


def vit_train_transform(size: int = 224, model_name: str = DEFAULT_PRETRAINED):
    """Random resized crop (scale 0.05-1), flip, tensor, the backbone's normalisation."""
    mean, std = pretrained_statistics(model_name)
    return transforms.Compose([
        transforms.RandomResizedCrop(size, scale=(0.05, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0)),
        transforms.RandomHorizontalFlip(p=0.5),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])


def vit_eval_transform(size: int = 224, model_name: str = DEFAULT_PRETRAINED):
    """Resize to 256/224 of ``size`` (bicubic), centre crop, tensor, the backbone's normalisation."""
    mean, std = pretrained_statistics(model_name)
    return transforms.Compose([
        transforms.Resize(int(round(256 / 224 * size)), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(size),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])
