"""``configs/paper.json``: one benchmark's settings, each method's, and the published numbers.

LiteLoRA and SD-LoRA read the benchmark's own keys (``common`` merged with the benchmark's);
every other method (InfLoRA, O-LoRA) has its own section under ``methods``: a training recipe
(:data:`RECIPE_KEYS`) plus fields of its strategy's config, which are checked by building that
config, so a wrong value fails when the file is read, not hours into a run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

from avalanche_litelora import InfLoRAStrategy, LiteLoRAStrategy, OLoRAStrategy, PerTaskLoRAStrategy

CONFIG_FILE = Path(__file__).parents[1] / "configs" / "paper.json"
#: The paper path's strategies by its own names (``sdlora``: SD-LoRA is the package's per-task LoRA).
STRATEGIES = {"litelora": LiteLoRAStrategy, "sdlora": PerTaskLoRAStrategy,
              "inflora": InfLoRAStrategy, "olora": OLoRAStrategy}
#: Keys of a method's section that set its training, not its strategy's config.
RECIPE_KEYS = ("optimizer", "lr", "betas", "weight_decay", "lr_schedule", "train_epochs", "train_mb_size",
               "eval_mb_size")
OPTIMIZERS = ("adam",)
SCHEDULES = ("coda_cosine",)


def _raw() -> Dict[str, Any]:
    with open(CONFIG_FILE) as f:
        return json.load(f)


def benchmark_names():
    return sorted(_raw()["benchmarks"])


def strategy_fields(name: str, settings: Dict[str, Any]) -> Dict[str, Any]:
    """The keys of a method's settings that its strategy's config takes."""
    return {k: v for k, v in settings.items() if k not in RECIPE_KEYS}


def method_settings(config: Dict[str, Any], method: str, benchmark: str) -> Dict[str, Any]:
    """A method's recipe and strategy fields on ``benchmark`` (its own overrides applied), checked."""
    section = config["methods"][method]
    if benchmark not in section["benchmarks"]:
        raise ValueError(f"{method} has no published settings for {benchmark!r} in {CONFIG_FILE.name}; "
                         f"it has them for {sorted(section['benchmarks'])}")
    settings = dict(section["settings"], **section["benchmarks"][benchmark])
    missing = [k for k in RECIPE_KEYS if k not in settings]
    if missing:
        raise ValueError(f"{method} in {CONFIG_FILE.name} lacks {missing}")
    if settings["optimizer"] not in OPTIMIZERS or settings["lr_schedule"] not in SCHEDULES:
        raise ValueError(f"{method}: optimizer must be one of {OPTIMIZERS} and lr_schedule one of {SCHEDULES}, "
                         f"got {settings['optimizer']!r} / {settings['lr_schedule']!r}")
    try:  # the strategy's own checks: an unknown key or a bad value fails here
        STRATEGIES[method].config_class(**strategy_fields(method, settings))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{method}'s settings in {CONFIG_FILE.name}: {error}") from error
    return settings


def load_config(name: str) -> Dict[str, Any]:
    """``common`` merged with benchmark ``name``'s own keys, the settings of every other method
    published for it (``methods``), and the published numbers (``reference``)."""
    config = _raw()
    if name not in config["benchmarks"]:
        raise ValueError(f"unknown paper benchmark {name!r}; choose from {sorted(config['benchmarks'])}")
    methods = {m: method_settings(config, m, name) for m in config["methods"]
               if not m.startswith("_") and name in config["methods"][m]["benchmarks"]}
    return dict(config["common"], **config["benchmarks"][name], name=name, methods=methods,
                reference=config["reference"].get(name, {}))


def available_strategies(cfg: Dict[str, Any]):
    """The methods this benchmark has settings for: LiteLoRA and SD-LoRA everywhere, the others
    where paper.json holds their published settings."""
    return ["litelora", "sdlora", *sorted(cfg["methods"])]
