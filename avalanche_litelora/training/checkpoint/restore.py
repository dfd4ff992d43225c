"""Loading a checkpoint into a live strategy: every check first, then every change.

A checkpoint that does not fit (another configuration, an unmet expectation, a model or
optimizer that would only half-load, metric state naming foreign classes) is refused with
:class:`CheckpointError` before anything in the strategy has changed.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Mapping, Optional

from torch import nn

from avalanche_litelora.training.checkpoint.capture import (
    _restore_optimizer,
    _restore_plugin,
    _restore_task_modules,
)
from avalanche_litelora.training.checkpoint.evaluator import (
    _allowed_metric_globals,
    _decode_metric_state,
    _restore_evaluator,
)
from avalanche_litelora.training.checkpoint.fingerprint import _fingerprint_diff, _short, config_fingerprint
from avalanche_litelora.training.checkpoint.format import CheckpointError, PathLike, read_checkpoint
from avalanche_litelora.adapters.access import unwrap_ddp
from avalanche_litelora.training.checkpoint.parts import _generators
from avalanche_litelora.training.checkpoint.rng import _check_rng_state, restore_rng_state


def _check_model_loads(model: nn.Module, state: Mapping[str, Any], task_modules: Mapping[str, Any]) -> None:
    """Load into a copy first: a state dict that does not fit must not half-load the model."""
    trial = copy.deepcopy(model)
    try:
        trial.load_state_dict(state)
        _restore_task_modules(trial, task_modules)
    except Exception as error:
        raise CheckpointError(f"the checkpoint's model does not load into this model: {error!r}") from error


def _check_optimizer_loads(strategy, names: List[List[str]], state: Mapping, model_state: Mapping) -> None:
    optimizer = strategy.optimizer
    unknown = [n for group in names for n in group if n not in model_state]
    if unknown:
        raise CheckpointError(f"the checkpoint's optimizer names parameters absent from its model: {unknown[:5]}")
    if len(names) != len(optimizer.param_groups) or len(state["param_groups"]) != len(names):
        raise CheckpointError(
            f"the checkpoint's optimizer has {len(names)} parameter groups, this run's has "
            f"{len(optimizer.param_groups)}"
        )
    if any(len(g["params"]) != len(n) for g, n in zip(state["param_groups"], names)):
        raise CheckpointError("the checkpoint's optimizer state does not match its parameter names")


def _verified(strategy, payload: Mapping, expect: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """Every check that can fail, and the decoded metric states; nothing is changed yet."""
    differences = _fingerprint_diff(payload["fingerprint"], config_fingerprint(strategy))
    if differences:
        raise CheckpointError(
            "the checkpoint comes from another configuration:\n  " + "\n  ".join(differences)
        )
    for key, value in (expect or {}).items():
        if payload["extra"].get(key) != value:
            raise CheckpointError(
                f"the checkpoint's {key} is {_short(payload['extra'].get(key))}, "
                f"this run expects {_short(value)}"
            )
    _check_rng_state(payload["rng"])
    live_generators = _generators(strategy)
    if set(payload["generators"]) != set(live_generators):
        raise CheckpointError(
            f"the checkpoint saved generators {sorted(payload['generators'])}, "
            f"this run has {sorted(live_generators)}"
        )
    _check_model_loads(unwrap_ddp(strategy.model), payload["model"], payload["task_modules"])
    optimizer = payload["optimizer"]
    _check_optimizer_loads(strategy, optimizer["param_names"], optimizer["state_dict"], payload["model"])
    if set(payload["clock"]) - set(vars(strategy.clock)):
        raise CheckpointError(f"the checkpoint's clock has unknown counters: {sorted(payload['clock'])}")
    if len(payload["plugins"]) != len(strategy.plugins):
        raise CheckpointError("the checkpoint has state for a different number of plugins")
    metric_states = []
    evaluator = getattr(strategy, "evaluator", None)
    if payload["evaluator"] is not None and evaluator is not None:
        allowed = _allowed_metric_globals(evaluator)
        for blob in payload["evaluator"]["metric_states"]:
            try:
                metric_states.append(None if blob is None else _decode_metric_state(blob, allowed))
            except Exception as error:
                raise CheckpointError(f"the checkpoint's metric state cannot be restored: {error}") from error
    return {"metric_states": metric_states}


def load_checkpoint(strategy, path: PathLike, *, expect: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Restore ``strategy`` from ``path``; refuses, changing nothing, what does not fit.

    :param expect: entries of the checkpoint's ``extra`` that must have these values
        (e.g. the identity of the benchmark being resumed).
    :return: the checkpoint's ``extra`` data plus ``"experiences_done"``.
    :raises CheckpointError: corrupted or truncated file, other configuration, unmet ``expect``.
    """
    payload = read_checkpoint(path)
    try:
        checked = _verified(strategy, payload, expect)
    except (KeyError, IndexError, TypeError, AttributeError) as error:
        raise CheckpointError(f"{path} lacks part of a checkpoint: {error!r}") from error
    unwrap_ddp(strategy.model).load_state_dict(payload["model"])
    _restore_task_modules(unwrap_ddp(strategy.model), payload["task_modules"])
    _restore_optimizer(strategy, payload["optimizer"])
    for key, value in payload["clock"].items():
        setattr(strategy.clock, key, value)
    for plugin, state in zip(strategy.plugins, payload["plugins"]):
        _restore_plugin(plugin, state)
    if payload["evaluator"] is not None and getattr(strategy, "evaluator", None) is not None:
        _restore_evaluator(strategy.evaluator, payload["evaluator"], checked["metric_states"])
    restore_rng_state(payload["rng"])
    for name, generator in _generators(strategy).items():
        generator.set_state(payload["generators"][name])
    return dict(payload["extra"], experiences_done=payload["experiences_done"])
