"""The evaluator's history and its metrics' internals, which a resumed run must continue.

Forgetting and BWT keep their earlier results inside the metric objects, which are not plain
data: each metric's ``vars`` are pickled into a byte tensor, and read back only through an
unpickler that builds nothing but the classes this run's own metrics are made of.
"""

from __future__ import annotations

import io
import pickle
import types
import warnings
from collections import defaultdict
from typing import Any, Dict, List, Mapping, Optional

import torch
from avalanche.evaluation.metric_results import TensorImage
from torch import nn

from avalanche_litelora.training.checkpoint.bridge import class_today
from avalanche_litelora.training.checkpoint.format import _is_plain


def _allowed_metric_globals(evaluator) -> set:
    """Classes the live evaluator's metrics are made of: all a checkpoint's metric state may name."""
    allowed = {defaultdict, dict, list, tuple, set, float, int, str, bool}
    seen = set()

    def walk(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, defaultdict) and isinstance(obj.default_factory, type):
            allowed.add(obj.default_factory)
        if isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, (list, tuple, set)):
            for v in obj:
                walk(v)
        elif hasattr(obj, "__dict__") and not isinstance(obj, (type, types.FunctionType, nn.Module)):
            allowed.add(type(obj))
            for v in vars(obj).values():
                walk(v)

    for metric in evaluator.metrics:
        walk(metric)
    names = {(c.__module__, c.__qualname__) for c in allowed}
    names |= {("torch._utils", "_rebuild_tensor_v2"), ("collections", "OrderedDict"),
              ("torch", "Size"), ("copyreg", "_reconstructor"), ("builtins", "object")}
    return names


def _restricted_pickle(allowed: set) -> types.SimpleNamespace:
    """A pickle module for ``torch.load`` that builds only the allowed classes."""

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            if (module, name) not in allowed:  # a class an earlier version pickled where it lived then
                module, name = class_today(module, name) or (module, name)
            if (module, name) not in allowed:
                raise pickle.UnpicklingError(
                    f"{module}.{name} is not a class this run's evaluator metrics use"
                )
            return super().find_class(module, name)

    def load(file, **kwargs):
        return Unpickler(file, **kwargs).load()

    return types.SimpleNamespace(__name__="restricted_pickle", Unpickler=Unpickler, load=load)


def _encode_metric_state(metric) -> Optional[torch.Tensor]:
    buffer = io.BytesIO()
    try:
        torch.save(dict(vars(metric)), buffer)
    except Exception as error:  # e.g. a metric holding a process handle
        warnings.warn(f"metric {type(metric).__name__} is not checkpointed ({error}); it restarts empty")
        return None
    return torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)


def _decode_metric_state(blob: torch.Tensor, allowed: set) -> Dict[str, Any]:
    return torch.load(
        io.BytesIO(blob.numpy().tobytes()), map_location="cpu", weights_only=False,
        pickle_module=_restricted_pickle(allowed),
    )


#: Metrics already warned about (values that are neither plain data nor images).
_warned_unsaved_metrics: set = set()


def _is_image(value: Any) -> bool:
    """Images (accuracy matrices, overlap maps) are drawn again from checkpointed numbers at the
    next evaluation, so leaving them out of a checkpoint loses nothing worth a warning."""
    if isinstance(value, (list, tuple)) and value:
        return all(_is_image(v) for v in value)
    return isinstance(value, TensorImage) or type(value).__module__.startswith("PIL.")


def _images_only(evaluator, name: str) -> bool:
    values = getattr(evaluator, "all_metric_results", {}).get(name, (None, []))[1]
    last = evaluator.last_metric_results.get(name)
    return all(_is_image(v) for v in [*values, *([last] if last is not None else [])])


def _capture_evaluator(evaluator) -> Optional[Dict[str, Any]]:
    if evaluator is None:
        return None
    history, skipped = {}, set()
    for name, (xs, values) in getattr(evaluator, "all_metric_results", {}).items():
        if _is_plain(values):
            history[name] = [list(xs), list(values)]
        else:
            skipped.add(name)
    last = {}
    for name, value in evaluator.last_metric_results.items():
        if _is_plain(value):
            last[name] = value
        else:
            skipped.add(name)
    skipped -= _warned_unsaved_metrics
    skipped = {name for name in skipped if not _images_only(evaluator, name)}
    if skipped:  # once per metric and process: a long run checkpoints after every experience
        _warned_unsaved_metrics.update(skipped)
        warnings.warn(f"metric values that are not plain data are not checkpointed: {sorted(skipped)}")
    return {
        "all_metric_results": history,
        "last_metric_results": last,
        "metric_states": [_encode_metric_state(m) for m in evaluator.metrics],
    }


def _restore_evaluator(evaluator, saved: Mapping, metric_states: List) -> None:
    history = evaluator.all_metric_results
    history.clear()
    for name, (xs, values) in saved["all_metric_results"].items():
        history[name] = (list(xs), list(values))
    evaluator.last_metric_results = dict(saved["last_metric_results"])
    for metric, state in zip(evaluator.metrics, metric_states):
        if state is not None:
            vars(metric).clear()
            vars(metric).update(state)
