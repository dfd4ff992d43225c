"""Text backbones: Hugging Face encoders fed token tensors of shape ``(2, L)`` (ids, mask).

    backbone = create_backbone("minilm_l6")               # all-MiniLM-L6-v2, offline
    strategy = LiteLoRAStrategy(model=backbone, target_modules=BERT_QUERY_VALUE, ...)
"""

from .encoder import HFTextEncoder
from .models import BERT_QUERY_VALUE, hf_text, load_tokenizer, minilm_l6, minilm_path
from .tokens import pack_tokens, tokenize, unpack_tokens

__all__ = [
    "BERT_QUERY_VALUE",
    "HFTextEncoder",
    "hf_text",
    "load_tokenizer",
    "minilm_l6",
    "minilm_path",
    "pack_tokens",
    "tokenize",
    "unpack_tokens",
]
