"""``timm_local``: any timm architecture, weights from a local checkpoint file.

Example::

    model = create_backbone("timm_local", model_name="vit_tiny_patch16_224",
                            checkpoint_path="ckpt/vit_tiny.safetensors", num_classes=10)

The weights are loaded by timm itself, i.e.
``timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay=dict(file=path), ...)``
(so timm's checkpoint filters, ``.safetensors`` / ``.pth`` handling and
``state_dict`` / EMA unwrapping apply), never from the network.

Classifier handling: the checkpoint's own head size is read from the file (or
given as ``checkpoint_num_classes``); the model is built with that head so timm
loads the checkpoint *strictly* (every key must match), and the head is then
replaced with ``reset_classifier(num_classes)`` if a different ``num_classes``
is requested (``num_classes=0``: no head, the model returns pooled features).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import timm
import torch
import torch.nn as nn

from .registry import register_backbone

__all__ = ["timm_local", "checkpoint_num_classes_of"]

_WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")


def _peek_shapes(path: Path) -> Dict[str, tuple]:
    """Parameter name -> shape of a checkpoint, without keeping tensors around."""
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt", device="cpu") as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        try:
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) format cannot be mmapped
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with context
        raise ValueError(f"timm_local: cannot read checkpoint {path}: {type(e).__name__}: {e}") from e
    if isinstance(ckpt, Mapping):
        for key in _WRAPPER_KEYS:  # same unwrapping order as timm.models.load_state_dict
            if isinstance(ckpt.get(key), Mapping):
                ckpt = ckpt[key]
                break
    if not isinstance(ckpt, Mapping):
        raise ValueError(f"timm_local: checkpoint {path} does not hold a state_dict (got {type(ckpt).__name__})")
    shapes = {}
    for k, v in ckpt.items():
        if isinstance(v, torch.Tensor):
            shapes[k[7:] if k.startswith("module.") else k] = tuple(v.shape)
    return shapes


def checkpoint_num_classes_of(model_name: str, path: Union[str, Path]) -> Optional[int]:
    """Head size stored in a timm-format checkpoint (0 if it holds no head), or
    ``None`` if timm declares no classifier for ``model_name``."""
    cfg = timm.models.get_pretrained_cfg(model_name)
    classifier = getattr(cfg, "classifier", None) if cfg is not None else None
    if not classifier:
        return None
    if not isinstance(classifier, str):
        classifier = classifier[0]
    shape = _peek_shapes(Path(path)).get(f"{classifier}.weight")
    return int(shape[0]) if shape else 0


@register_backbone("timm_local")
def timm_local(model_name: str, checkpoint_path: Union[str, os.PathLike], num_classes: Optional[int] = None,
               checkpoint_num_classes: Optional[int] = None, **kwargs: Any) -> nn.Module:
    """timm model ``model_name`` with weights from the local file ``checkpoint_path``.

    Args:
        model_name: a timm model name (``timm.list_models()``), optionally with a
            pretrained tag; hub names (``hf-hub:...``) are refused (offline only).
        checkpoint_path: ``.safetensors`` or torch checkpoint (a state_dict, or a
            dict wrapping it under ``state_dict`` / ``model`` / ``*_ema``).
        num_classes: head size of the returned model (``0``: no head); default:
            the checkpoint's.
        checkpoint_num_classes: head size stored in the checkpoint; read from the
            file when omitted (set it for non-timm-format checkpoints that rely on
            a timm checkpoint filter).
        **kwargs: passed to ``timm.create_model`` (e.g. ``img_size``, ``in_chans``,
            ``drop_path_rate``, ``pretrained_strict=False``).

    Raises:
        FileNotFoundError: the checkpoint file does not exist.
        ValueError: unknown / hub model name, or unreadable checkpoint.
        RuntimeError: the checkpoint does not match the architecture.
    """
    if not isinstance(model_name, str) or ":" in model_name:
        raise ValueError(
            f"timm_local: model_name must be a plain timm model name (offline), got {model_name!r}"
        )
    if not timm.is_model(model_name):
        close = timm.list_models(f"*{model_name.split('.')[0]}*")[:10]
        raise ValueError(
            f"timm_local: unknown timm model {model_name!r}"
            + (f"; similar names: {', '.join(close)}" if close else "")
        )
    if checkpoint_path is None:
        raise ValueError("timm_local: checkpoint_path is required")
    path = Path(checkpoint_path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"timm_local: checkpoint file for {model_name!r} not found: {path}")
    if not path.is_file():
        raise FileNotFoundError(f"timm_local: checkpoint path for {model_name!r} is not a file: {path}")
    path = path.resolve()

    if checkpoint_num_classes is None:
        checkpoint_num_classes = checkpoint_num_classes_of(model_name, path)

    overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
    overlay["file"] = str(path)
    create_kwargs = dict(kwargs)
    if checkpoint_num_classes is not None:
        overlay["num_classes"] = checkpoint_num_classes
        create_kwargs["num_classes"] = checkpoint_num_classes
    elif num_classes is not None:
        create_kwargs["num_classes"] = num_classes
    try:
        model = timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay=overlay, **create_kwargs)
    except RuntimeError as e:
        raise RuntimeError(
            f"timm_local: checkpoint {path} does not match timm model {model_name!r} "
            f"(kwargs {create_kwargs}): {e}"
        ) from e
    if num_classes is not None and num_classes != getattr(model, "num_classes", num_classes):
        model.reset_classifier(num_classes)
    return model
