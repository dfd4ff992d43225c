"""Backbones shipped with avalanche_litelora (see :mod:`.registry`).

Registered names: ``vit_small28_fmnist``, ``vit_small28_mnist``,
``vit_small28_random`` (see :mod:`.vit_small28`), ``efficientnet_lite0`` (optional extra,
imported only when built; see :mod:`.efficientnet_lite`) and ``timm_local`` (any timm model
from a local checkpoint, see :mod:`.timm_local`).
"""
from .registry import create_backbone, list_backbones, register_backbone

# Importing the modules registers their constructors.
from . import vit_small28 as _vit_small28  # noqa: F401,E402
from . import timm_local as _timm_local  # noqa: F401,E402
from . import efficientnet_lite as _efficientnet_lite  # noqa: F401,E402
from . import text as _text  # noqa: F401,E402  (hf_text, minilm_l6; transformers imported when built)

__all__ = ["create_backbone", "list_backbones", "register_backbone"]
