"""A strategy's run state as one dict of plain data (the checkpoint's payload), and its parts
put back: the model and the task bookkeeping outside its state dict, the optimizer, the clock,
plugin state (the ``checkpoint_state()`` protocol), generators, evaluator.

Capturing changes nothing in the strategy; :mod:`.restore` checks a payload before any of the
``_restore_*`` functions here run.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, Mapping, Optional

from avalanche.models import MultiTaskModule
from torch import nn

from avalanche_litelora.training.checkpoint.evaluator import _capture_evaluator
from avalanche_litelora.training.checkpoint.fingerprint import config_fingerprint
from avalanche_litelora.training.checkpoint.format import FORMAT, FORMAT_VERSION, _is_plain
from avalanche_litelora.adapters.access import unwrap_ddp
from avalanche_litelora.training.checkpoint.parts import _generators
from avalanche_litelora.training.checkpoint.rng import capture_rng_state
from avalanche_litelora.training import protocol


# --------------------------------------------------------------------------- task modules
def _task_module_state(model: nn.Module) -> Dict[str, Any]:
    """What Avalanche's ``MultiTaskModule`` learns outside its state dict.

    ``known_train_tasks_labels`` decides whether a task's head is new in training (a head
    first built by evaluation is re-initialised); losing it would change the resumed run.
    """
    return {
        name: {"max_class_label": int(m.max_class_label),
               "known_train_tasks_labels": sorted(int(t) for t in m.known_train_tasks_labels)}
        for name, m in model.named_modules() if isinstance(m, MultiTaskModule)
    }


def _restore_task_modules(model: nn.Module, state: Mapping[str, Any]) -> None:
    modules = dict(model.named_modules())
    for name, saved in state.items():
        modules[name].max_class_label = saved["max_class_label"]
        modules[name].known_train_tasks_labels = set(saved["known_train_tasks_labels"])


# ------------------------------------------------------------------------------ optimizer
def _optimizer_state(strategy, model: nn.Module) -> Dict[str, Any]:
    """The optimizer's state dict with each slot named by its model parameter.

    Slots holding a parameter outside the model are left out: the optimizer is usually built
    on the plain backbone, whose classifier the adapter-bank model drops, and Avalanche's
    ``make_optimizer`` keeps such parameters; they get no gradient and change nothing.
    """
    names = {id(p): n for n, p in model.named_parameters()}
    state = strategy.optimizer.state_dict()
    groups, kept_ids = [], set()
    for group, saved in zip(strategy.optimizer.param_groups, state["param_groups"]):
        slots = [(names[id(p)], i) for p, i in zip(group["params"], saved["params"]) if id(p) in names]
        saved["params"] = [i for _, i in slots]
        groups.append([n for n, _ in slots])
        kept_ids.update(saved["params"])
    state["state"] = {i: v for i, v in state["state"].items() if i in kept_ids}
    return {
        "state_dict": state,
        "param_names": groups,
        "tracked": getattr(strategy, "optimized_param_id", None) is not None,
    }


def _restore_optimizer(strategy, saved: Mapping) -> None:
    params = dict(unwrap_ddp(strategy.model).named_parameters())
    optimizer = strategy.optimizer
    for group, group_names in zip(optimizer.param_groups, saved["param_names"]):
        group["params"] = [params[n] for n in group_names]
    optimizer.state = defaultdict(dict)
    optimizer.load_state_dict(saved["state_dict"])
    if hasattr(strategy, "optimized_param_id"):  # Avalanche's name -> parameter tracking
        strategy.optimized_param_id = params if saved["tracked"] else None


# -------------------------------------------------------------------------------- plugins
def _plugin_state(plugin) -> Dict[str, Any]:
    """A plugin's run state, through its ``checkpoint_state()`` (``{}`` without one)."""
    state = protocol.checkpoint_state(plugin)
    return {} if state is None else {"__custom__": state}


def _restore_plugin(plugin, state: Mapping[str, Any]) -> None:
    for attr, value in state.items():
        if attr == "__custom__":
            protocol.load_checkpoint_state(plugin, value)
        else:  # files written before 2026-12-06 stored PruneClosedCandidatePlugin.decisions so
            setattr(plugin, attr, value)


# -------------------------------------------------------------------------------- payload
def capture_state(strategy, extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Everything a checkpoint holds, as plain data (the payload of :func:`save_checkpoint`)."""
    if extra is not None and not _is_plain(dict(extra)):
        raise ValueError("extra checkpoint data must be plain (numbers, strings, tensors, lists, dicts)")
    model = unwrap_ddp(strategy.model)
    if any(getattr(m, "merged", False) is True for m in model.modules()):
        raise ValueError("the model's adapters are merged into its weights (inside evaluation?): "
                         "checkpoint between experiences, when they are unmerged")
    plugins = [_plugin_state(plugin) for plugin in strategy.plugins]
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fingerprint": config_fingerprint(strategy),
        "model": model.state_dict(),
        "task_modules": _task_module_state(model),
        "optimizer": _optimizer_state(strategy, model),
        "clock": dict(vars(strategy.clock)),
        "experiences_done": int(strategy.clock.train_exp_counter),
        "rng": capture_rng_state(),
        "generators": {k: g.get_state() for k, g in _generators(strategy).items()},
        "evaluator": _capture_evaluator(getattr(strategy, "evaluator", None)),
        "plugins": plugins,
        "extra": dict(extra or {}),
    }
    if not _is_plain(payload):
        raise ValueError("the strategy's state is not plain data; it cannot be checkpointed")
    return payload
