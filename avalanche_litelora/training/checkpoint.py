"""State-dict checkpoints of a running strategy: written atomically, verified before loading.

Avalanche's own ``save_checkpoint`` dills the whole strategy, which fails on this stack. This
module writes one ``torch.save``d dict of plain data instead (``weights_only``-loadable):
``"model"`` (``model.state_dict()``), ``"optimizer"``, ``"clock"``, ``"rng"``, ``"evaluator"``,
``"plugins"``, ``"extra"`` (e.g. the benchmark position), a ``"fingerprint"`` of the
configuration and a ``"checksum"`` of all of it. Loading refuses a corrupted file or another
configuration with :class:`CheckpointError` before anything in the strategy changes.
Works with any ``SupervisedTemplate`` whose model's state dict loads into a freshly built one.
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import pickle
import random
import sys
import tempfile
import time
import types
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np
import torch
from avalanche.distributed import DistributedHelper
from avalanche.models import MultiTaskModule
from torch import nn

from avalanche_litelora.lora.layer import LoRALinear

FORMAT = "avalanche-litelora-checkpoint"
FORMAT_VERSION = 1

#: Test hook: seconds to pause in the middle of writing a checkpoint (kill tests only).
PAUSE_ENV = "AVALANCHE_LITELORA_CHECKPOINT_TEST_PAUSE_S"

#: Plugin attributes that are run state, not settings, by plugin class: restored on load.
#: (Other plugins can define ``checkpoint_state()`` / ``load_checkpoint_state(state)``.)
PLUGIN_STATE_ATTRIBUTES: Dict[str, tuple] = {
    "avalanche_litelora.training.plugins.prune.PruneClosedCandidatePlugin": ("decisions",),
}


def _state_attributes(plugin) -> tuple:
    return tuple(a for c in type(plugin).__mro__ for a in PLUGIN_STATE_ATTRIBUTES.get(_qualname(c), ()))

PathLike = Union[str, os.PathLike]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed: corrupted, truncated, or from another configuration."""


# ----------------------------------------------------------------------------- plain data
def _qualname(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_plain(obj: Any) -> bool:
    """Data ``torch.load(weights_only=True)`` reads back as it was written."""
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return True
    if isinstance(obj, (list, tuple)):
        return all(_is_plain(v) for v in obj)
    if isinstance(obj, dict):
        return all(_is_plain(k) and _is_plain(v) for k, v in obj.items())
    return False


def _digest(obj: Any) -> str:
    """SHA-256 over the structure and every byte of plain data, independent of file layout."""
    h = hashlib.sha256()

    def feed(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            h.update(f"D{len(value)}|".encode())
            for k, v in value.items():
                feed(k)
                feed(v)
        elif isinstance(value, (list, tuple)):
            h.update(f"L{len(value)}|".encode())
            for v in value:
                feed(v)
        elif value is None or isinstance(value, (bool, int, float, str)):
            h.update(f"{type(value).__name__}:{value!r}|".encode())
        else:
            raise TypeError(f"{type(value).__name__} is not plain checkpoint data")

    feed(obj)
    return "sha256:" + h.hexdigest()


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


# ---------------------------------------------------------------------------- fingerprint
def _public_scalars(obj: Any, skip: tuple = ()) -> Dict[str, Any]:
    return {
        k: v for k, v in sorted(vars(obj).items())
        if not k.startswith("_") and k not in skip
        and (v is None or isinstance(v, (bool, int, float, str)))
    }


def config_fingerprint(strategy) -> Dict[str, Any]:
    """What must be equal for a checkpoint to resume into ``strategy``.

    The strategy, model, optimizer, criterion, plugin and metric classes; the training sizes;
    this package's plugin and model settings; names, shapes and dtypes of the frozen backbone.
    A model can replace the last two by defining ``checkpoint_fingerprint()``.
    """
    model = _unwrap(strategy.model)
    plugin_settings = []
    for plugin in strategy.plugins:
        if type(plugin).__module__.startswith("avalanche_litelora."):
            plugin_settings.append(_public_scalars(plugin, skip=_state_attributes(plugin)))
        else:
            plugin_settings.append({})
    evaluator = getattr(strategy, "evaluator", None)
    optimizer = strategy.optimizer
    fingerprint = {
        "strategy": _qualname(strategy),
        "model": _qualname(model),
        "criterion": _qualname(getattr(strategy, "_criterion", None)),
        "optimizer": _qualname(optimizer),
        "optimizer_defaults": {k: v for k, v in sorted(optimizer.defaults.items()) if _is_plain(v)},
        "sizes": [strategy.train_epochs, strategy.train_mb_size, strategy.eval_mb_size],
        "plugins": [_qualname(p) for p in strategy.plugins],
        "plugin_settings": plugin_settings,
        "metrics": [_qualname(m) for m in getattr(evaluator, "metrics", [])],
    }
    custom = getattr(model, "checkpoint_fingerprint", None)
    if callable(custom):
        fingerprint["model_settings"] = custom()
    else:
        settings = {}
        for key in ("rank", "init_logit", "task_incremental", "lora_layer_names"):
            if hasattr(model, key):
                settings[key] = copy.copy(getattr(model, key))
        if hasattr(model, "gate"):
            settings["tau"] = getattr(model.gate, "tau", None)
        settings["backbone"] = _backbone_signature(getattr(model, "backbone", model))
        fingerprint["model_settings"] = settings
    return fingerprint


def _backbone_signature(backbone: nn.Module) -> List[list]:
    """Names, shapes and dtypes of the frozen weights: everything but what the LoRA layers grow."""
    lora_prefixes = tuple(f"{n}." for n, m in backbone.named_modules() if isinstance(m, LoRALinear) and n)
    signature = []
    for name, tensor in backbone.state_dict().items():
        inside = next((p for p in lora_prefixes if name.startswith(p)), None)
        if torch.is_tensor(tensor) and (inside is None or name.startswith(inside + "base.")):
            signature.append([name, list(tensor.shape), str(tensor.dtype)])
    return signature


def _fingerprint_diff(saved: Mapping, live: Mapping) -> List[str]:
    keys = sorted(set(saved) | set(live))
    return [
        f"{k}: checkpoint has {_short(saved.get(k))}, this run has {_short(live.get(k))}"
        for k in keys if saved.get(k) != live.get(k)
    ]


def _short(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# ------------------------------------------------------------------------------ RNG state
def capture_rng_state() -> Dict[str, Any]:
    """Global generators: torch (CPU and CUDA), numpy and Python ``random``."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "random": list(random.getstate()),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    state["random"][1] = list(state["random"][1])
    return state


def _check_rng_state(state: Mapping) -> None:
    try:
        _check_rng_fields(state)
    except (KeyError, IndexError, TypeError) as error:
        raise CheckpointError(f"the checkpoint's RNG state is malformed: {error!r}") from error


def _check_rng_fields(state: Mapping) -> None:
    torch_state = state["torch"]
    if not (torch.is_tensor(torch_state) and torch_state.dtype == torch.uint8
            and torch_state.shape == torch.get_rng_state().shape):
        raise CheckpointError("the checkpoint's torch RNG state is malformed")
    kind, keys = state["numpy"][0], state["numpy"][1]
    if kind != "MT19937" or not torch.is_tensor(keys) or keys.numel() != 624:
        raise CheckpointError("the checkpoint's numpy RNG state is malformed")
    if len(state["random"]) != 3 or len(state["random"][1]) != 625:
        raise CheckpointError("the checkpoint's Python RNG state is malformed")


def restore_rng_state(state: Mapping) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["random"]
    random.setstate((version, tuple(internal), gauss))
    if state["cuda"] and torch.cuda.is_available():
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


def _generators(strategy) -> Dict[str, torch.Generator]:
    """``torch.Generator`` attributes of the strategy and its plugins, by a stable name."""
    found = {}
    owners = [("strategy", strategy)] + [(f"plugin{i}", p) for i, p in enumerate(strategy.plugins)]
    for owner_name, owner in owners:
        for attr, value in sorted(vars(owner).items()):
            if isinstance(value, torch.Generator):
                found[f"{owner_name}.{attr}"] = value
    return found


# --------------------------------------------------------------------- evaluator metrics
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


#: Metrics already warned about (images and other values that are not plain data).
_warned_unsaved_metrics: set = set()


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
    if skipped:  # once per metric and process: a long run checkpoints after every experience
        _warned_unsaved_metrics.update(skipped)
        warnings.warn(f"metric values that are not plain data are not checkpointed: {sorted(skipped)}")
    return {
        "all_metric_results": history,
        "last_metric_results": last,
        "metric_states": [_encode_metric_state(m) for m in evaluator.metrics],
    }


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


# ------------------------------------------------------------------------------- capture
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


def capture_state(strategy, extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Everything a checkpoint holds, as plain data (the payload of :func:`save_checkpoint`)."""
    if extra is not None and not _is_plain(dict(extra)):
        raise ValueError("extra checkpoint data must be plain (numbers, strings, tensors, lists, dicts)")
    model = _unwrap(strategy.model)
    if any(getattr(m, "merged", False) is True for m in model.modules()):
        raise ValueError("the model's adapters are merged into its weights (inside evaluation?): "
                         "checkpoint between experiences, when they are unmerged")
    plugins = []
    for plugin in strategy.plugins:
        state = {a: copy.deepcopy(getattr(plugin, a)) for a in _state_attributes(plugin)}
        if callable(getattr(plugin, "checkpoint_state", None)):
            state["__custom__"] = plugin.checkpoint_state()
        plugins.append(state)
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


# --------------------------------------------------------------------------------- write
class _PausingWriter:
    """Test hook: announces and pauses after the first bytes of a checkpoint are written."""

    def __init__(self, file, seconds: float, tmp: str):
        self.file, self.seconds, self.tmp, self.paused = file, seconds, tmp, False

    def write(self, data) -> int:
        written = self.file.write(data)
        if not self.paused:
            self.paused = True
            self.file.flush()
            print(f"CHECKPOINT-WRITE-PAUSED {self.tmp}", file=sys.stderr, flush=True)
            time.sleep(self.seconds)
        return written

    def flush(self) -> None:
        self.file.flush()


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_torch_save(obj: Any, path: PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync, rename over it, fsync the folder.

    A crash at any point leaves either the previous file or the new one, never a partial one.
    """
    path = Path(path)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(f".{path.name}.tmp-*"):  # left by a killed write
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=directory)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from the group
        with os.fdopen(fd, "wb") as file:
            pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
            torch.save(obj, _PausingWriter(file, pause, tmp) if pause > 0 else file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(directory)
    return path


def save_checkpoint(strategy, path: PathLike, *, extra: Optional[Mapping[str, Any]] = None) -> Optional[Path]:
    """Write the strategy's state to ``path`` atomically; only the main process writes.

    Call it between experiences (after ``train``/``eval``), never inside them.
    :param extra: plain data stored beside the state (e.g. the benchmark position).
    :return: the path written, or ``None`` on a non-main distributed process.
    """
    if not DistributedHelper.is_main_process:
        return None
    payload = capture_state(strategy, extra)
    payload["checksum"] = _digest(payload)
    return atomic_torch_save(payload, path)


# ---------------------------------------------------------------------------------- read
def read_checkpoint(path: PathLike) -> Dict[str, Any]:
    """Load and verify a checkpoint file (format, version, checksum) without touching a strategy."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupted): {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an {FORMAT} file")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {payload.get('format_version')!r}; "
            f"this version of the package reads version {FORMAT_VERSION}"
        )
    checksum = payload.pop("checksum", None)
    try:
        actual = _digest(payload)
    except TypeError as error:
        raise CheckpointError(f"{path} holds data a checkpoint never holds: {error}") from error
    if checksum != actual:
        raise CheckpointError(f"{path} is corrupted: its checksum does not match its content")
    return payload


# ---------------------------------------------------------------------------------- load
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
    _check_model_loads(_unwrap(strategy.model), payload["model"], payload["task_modules"])
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


def _restore_optimizer(strategy, saved: Mapping) -> None:
    params = dict(_unwrap(strategy.model).named_parameters())
    optimizer = strategy.optimizer
    for group, group_names in zip(optimizer.param_groups, saved["param_names"]):
        group["params"] = [params[n] for n in group_names]
    optimizer.state = defaultdict(dict)
    optimizer.load_state_dict(saved["state_dict"])
    if hasattr(strategy, "optimized_param_id"):  # Avalanche's name -> parameter tracking
        strategy.optimized_param_id = params if saved["tracked"] else None


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
    _unwrap(strategy.model).load_state_dict(payload["model"])
    _restore_task_modules(_unwrap(strategy.model), payload["task_modules"])
    _restore_optimizer(strategy, payload["optimizer"])
    for key, value in payload["clock"].items():
        setattr(strategy.clock, key, value)
    for plugin, state in zip(strategy.plugins, payload["plugins"]):
        for attr, value in state.items():
            if attr == "__custom__":
                plugin.load_checkpoint_state(value)
            else:
                setattr(plugin, attr, value)
    if payload["evaluator"] is not None and getattr(strategy, "evaluator", None) is not None:
        _restore_evaluator(strategy.evaluator, payload["evaluator"], checked["metric_states"])
    restore_rng_state(payload["rng"])
    for name, generator in _generators(strategy).items():
        generator.set_state(payload["generators"][name])
    return dict(payload["extra"], experiences_done=payload["experiences_done"])


class CheckpointMixin:
    """``save_checkpoint`` / ``resume`` methods for a ``SupervisedTemplate`` subclass."""

    def save_checkpoint(self, path: PathLike, *, extra: Optional[Mapping[str, Any]] = None) -> Optional[Path]:
        """Write this strategy's state to ``path`` (see :func:`save_checkpoint`)."""
        return save_checkpoint(self, path, extra=extra)

    def resume(self, path: PathLike) -> int:
        """Restore the state saved at ``path``; returns the number of finished experiences."""
        return load_checkpoint(self, path)["experiences_done"]


__all__ = [
    "CheckpointError",
    "CheckpointMixin",
    "PAUSE_ENV",
    "atomic_torch_save",
    "capture_rng_state",
    "capture_state",
    "config_fingerprint",
    "load_checkpoint",
    "read_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]
