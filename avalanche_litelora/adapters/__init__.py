"""The base every method family builds on (peft's ``tuners_utils``): the adapter layer and its
stacked form, injection into a user's model, the adapter model with its surgery and heads,
the settings base, and the one accessor of the adapter model behind a strategy."""

from avalanche_litelora.adapters.access import OptionalAdapterModel, adapter_model_of, unwrap_ddp
from avalanche_litelora.adapters.config import SettingsBase, accepts_config_keywords
from avalanche_litelora.adapters.inject import AUTO_TARGETS, find_target_modules, inject_adapters
from avalanche_litelora.adapters.layer import AdapterLayer, qkv_slices, set_trainable
from avalanche_litelora.adapters.model import AdapterModel

__all__ = [
    "AdapterLayer",
    "AdapterModel",
    "AUTO_TARGETS",
    "OptionalAdapterModel",
    "SettingsBase",
    "accepts_config_keywords",
    "adapter_model_of",
    "find_target_modules",
    "inject_adapters",
    "qkv_slices",
    "set_trainable",
    "unwrap_ddp",
]
