"""avalanche-litelora: gated, prunable LoRA adapter banks for continual learning in Avalanche."""

from avalanche_litelora._warnings import import_avalanche_quietly as _import_avalanche_quietly

_import_avalanche_quietly()  # first, before any module of ours imports avalanche

from avalanche_litelora import former_names as _former_names

_former_names.install()  # the 0.1.0 import paths, deprecated

from avalanche_litelora.adapters import AdapterLayer
from avalanche_litelora.analysis import RedundancyReport, analyse_model, analyse_state_dict
from avalanche_litelora.data import (
    ExperienceRedundancy,
    known_redundancy_stream,
    redundancy_of,
    stream_redundancy,
)
from avalanche_litelora.evaluation import litelora_evaluator, litelora_metrics
from avalanche_litelora.inflora import InfLoRAConfig, InfLoRAStrategy, inflora_metrics
from avalanche_litelora.lora import (
    AdapterGate,
    HeadOnlyConfig,
    HeadOnlyStrategy,
    LiteLoRAConfig,
    LiteLoRAStrategy,
    LoRABankConfig,
    LoRAClassifier,
    LoRALinear,
    PerTaskLoRAConfig,
    PerTaskLoRAStrategy,
    SequentialLoRAConfig,
    SequentialLoRAStrategy,
    TaskRoutedLoRAConfig,
    TaskRoutedLoRAStrategy,
    inject_lora,
)
from avalanche_litelora.lora import plugins as _lora_plugins
from avalanche_litelora.lora.plugins import *  # noqa: F401,F403 (the names in _lora_plugins.__all__)
from avalanche_litelora.metrics import (
    AccuracyMatrixHeatmapMetric,
    AdapterRedundancyMetric,
    BankReadoutMetric,
    ForgettingCurveMetric,
)
from avalanche_litelora.olora import OLoRAConfig, OLoRAStrategy, olora_metrics
from avalanche_litelora.share import (
    MergeReport,
    ShareClassifier,
    ShareConfig,
    ShareLinear,
    ShareMergePlugin,
    ShareOpenTaskPlugin,
    ShareStrategy,
)
from avalanche_litelora.training.checkpoint import (
    CheckpointError,
    CheckpointMixin,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from avalanche_litelora.training.loop import train_stream
from avalanche_litelora.adapters.surgery import UnrecognisedClassifierWarning
from avalanche_litelora.lora.plugins.candidate_losses import GateDecisionWarning
from avalanche_litelora.lora.plugins.selection import InertSelectionWarning
from avalanche_litelora.training.plugins.current_classes import SingleClassExperienceWarning
from avalanche_litelora.training.stalled_training import StalledTrainingWarning
from avalanche_litelora.training import plugins as _plugins
from avalanche_litelora.training.plugins import *  # noqa: F401,F403 (the names in _plugins.__all__)

__version__ = "0.1.0"

__all__ = [
    # settings
    "HeadOnlyConfig",
    "InfLoRAConfig",
    "LiteLoRAConfig",
    "LoRABankConfig",
    "OLoRAConfig",
    "PerTaskLoRAConfig",
    "SequentialLoRAConfig",
    "ShareConfig",
    "TaskRoutedLoRAConfig",
    # strategies
    "HeadOnlyStrategy",
    "InfLoRAStrategy",
    "LiteLoRAStrategy",
    "OLoRAStrategy",
    "PerTaskLoRAStrategy",
    "SequentialLoRAStrategy",
    "ShareStrategy",
    "TaskRoutedLoRAStrategy",
    # models and layers
    "LoRAClassifier",
    "AdapterLayer",
    "LoRALinear",
    "AdapterGate",
    "inject_lora",
    "ShareClassifier",
    "ShareLinear",
    "MergeReport",
    # plugins: one lifecycle job each (training.plugins, lora.plugins, share.plugins)
    *_plugins.__all__,
    *_lora_plugins.__all__,
    "ShareOpenTaskPlugin",
    "ShareMergePlugin",
    # runs: checkpoints and the resumable loop
    "train_stream",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint",
    "CheckpointError",
    "CheckpointMixin",
    # metrics, evaluation and analysis
    "litelora_evaluator",
    "litelora_metrics",
    "inflora_metrics",
    "olora_metrics",
    "ForgettingCurveMetric",
    "AccuracyMatrixHeatmapMetric",
    "BankReadoutMetric",
    "AdapterRedundancyMetric",
    "analyse_model",
    "analyse_state_dict",
    "RedundancyReport",
    # the package's warnings, to filter or to turn into errors
    "GateDecisionWarning",
    "InertSelectionWarning",
    "SingleClassExperienceWarning",
    "StalledTrainingWarning",
    "UnrecognisedClassifierWarning",
    # streams whose redundancy is known
    "known_redundancy_stream",
    "ExperienceRedundancy",
    "redundancy_of",
    "stream_redundancy",
]


def __getattr__(name: str):
    """The guard's two former names, deprecated."""
    if name in ("BankGuardPlugin", "ShareGuardPlugin"):
        return _former_names.getattr_for("avalanche_litelora.training.plugins")(name)
    raise AttributeError(f"module 'avalanche_litelora' has no attribute {name!r}")
