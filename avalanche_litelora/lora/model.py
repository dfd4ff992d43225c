"""The adapter-bank model: frozen backbone with LoRA layers, one model-level gate, a head.

Avalanche's plugins read a model's type: a :class:`~avalanche.models.MultiTaskModule` is
called with task labels (and, by LwF, with ``None`` for every head's output), a plain module
with the input alone. So the task-incremental bank is its own class,
:class:`TaskIncrementalLoRAClassifier` (a ``MultiTaskModule``), and the class-incremental
model stays a plain module, as benchmarks without task labels need.
:meth:`LoRAClassifier.build` picks the class from ``task_incremental``, as the strategies do.
"""

from __future__ import annotations

import warnings
from typing import Dict, List, Optional, Sequence, Union

import torch
from avalanche.models import MultiTaskModule
from torch import Tensor, nn

from avalanche_litelora.checks import check_choice, check_flag
from avalanche_litelora.lora.gate import AdapterGate, PerCallGate, check_init_logit
from avalanche_litelora.adapters.inject import AUTO_TARGETS
from avalanche_litelora.adapters.layer import set_trainable
from avalanche_litelora.lora.layer import LoRALinear
from avalanche_litelora.adapters.model import AdapterModel
from avalanche_litelora.lora.loading import rebuild_bank_for_loading
from avalanche_litelora.lora.readouts import BankReadoutsMixin
from avalanche_litelora.lora.phases import BOUNDARIES, MAGNITUDE_SCOPES, PHASE_TRAINS, Phase
from avalanche_litelora.adapters.seeding import (
    check_seed,
    default_seed,
    derive_seed,
    generator_for,
)
from avalanche_litelora.registry import register

@register
class LoRAClassifier(BankReadoutsMixin, AdapterModel):
    """A backbone adapted by a bank of gated LoRA adapters, plus an Avalanche head.

    The bank is the set of adapters that every wrapped layer holds under the same names;
    each adapter has one gate logit in :attr:`gate`, sampled once per forward pass and
    pushed to every layer, so one decision keeps or drops an adapter everywhere.
    Lifecycle operations (:meth:`open_candidate`, :meth:`prune`, :meth:`freeze`) are called
    by the plugins in :mod:`avalanche_litelora.training.plugins`.

    :param seed: seeds every adapter and head row the model builds (default: the seed of
        torch's global generator at construction), so neither depends on what else drew
        random numbers meanwhile, evaluation included.
    :param magnitude_scope: one of :data:`MAGNITUDE_SCOPES`.
    :param boundary: one of :data:`BOUNDARIES`.
    """

    learned_state_name = "adapter bank"
    method_name = "LiteLoRA"

    @staticmethod
    def is_learned_key(key: str) -> bool:
        return AdapterModel.is_learned_key(key) or key.startswith(("gate.", "shared_magnitudes."))

    @classmethod
    def build(cls, backbone: nn.Module, **settings) -> "LoRAClassifier":
        """The bank for these settings: :class:`TaskIncrementalLoRAClassifier` when
        ``task_incremental=True`` is asked of ``LoRAClassifier`` itself, else ``cls``."""
        if cls is LoRAClassifier and settings.get("task_incremental") is True:
            cls = TaskIncrementalLoRAClassifier
        return cls(backbone, **settings)

    def __new__(cls, *args, **kwargs):
        """0.1.0's path, for one release: ``LoRAClassifier(..., task_incremental=True)`` swaps class."""
        if cls is LoRAClassifier and kwargs.get("task_incremental") is True:
            warnings.warn("LoRAClassifier(..., task_incremental=True) is deprecated: use LoRAClassifier.build"
                          "(..., task_incremental=True) or TaskIncrementalLoRAClassifier(...)", DeprecationWarning, 2)
            cls = TaskIncrementalLoRAClassifier
        return super().__new__(cls)

    def __init__(
        self,
        backbone: nn.Module,
        *,
        rank: int = 10,
        target_modules: Union[str, Sequence[str]] = AUTO_TARGETS,
        task_incremental: bool = False,
        head: Optional[nn.Module] = None,
        feature_dim: Optional[int] = None,
        init_logit: float = 0.5,
        tau: float = 1.0,
        initial_out_features: int = 2,
        seed: Optional[int] = None,
        magnitude_scope: str = "per_layer",
        boundary: str = "rescale",
    ):
        super().__init__()
        check_choice("magnitude_scope", magnitude_scope, MAGNITUDE_SCOPES)
        check_choice("boundary", boundary, BOUNDARIES)
        init_logit = check_init_logit("init_logit", init_logit)
        check_flag("task_incremental", task_incremental)
        if task_incremental != isinstance(self, MultiTaskModule):
            raise TypeError(
                f"{type(self).__name__} is {'not ' if task_incremental else ''}a MultiTaskModule "
                f"but task_incremental={task_incremental}: subclass TaskIncrementalLoRAClassifier "
                "for a task-incremental model, LoRAClassifier for a class-incremental one"
            )
        seed = check_seed(seed)
        gate = AdapterGate(tau)  # validates tau before the backbone is touched
        self.seed = default_seed() if seed is None else seed
        layers = self._adapt_backbone(
            backbone, target_modules=target_modules, rank=rank, layer_type=LoRALinear,
            feature_dim=feature_dim, head=head, task_incremental=task_incremental,
            initial_out_features=initial_out_features, head_seed=derive_seed(self.seed, "head"),
        )
        self.gate = gate
        self.magnitude_scope = magnitude_scope
        self.boundary = boundary
        #: One magnitude per adapter, shared by every layer (``magnitude_scope="per_adapter"``);
        #: the per-layer magnitudes then stay frozen and only carry folded norms.
        self.shared_magnitudes = nn.ParameterDict()
        self.rank = rank
        self.init_logit = init_logit
        self.task_incremental = task_incremental
        self.lora_layer_names: List[str] = list(layers)
        self.pruned_adapters: List[str] = []
        #: Whether earlier adapters' magnitudes train with each new one (set by the plugins).
        self.train_past_magnitudes = True
        self._opened = 0
        #: The :class:`Phase` that last chose what trains.
        self.phase = Phase.TRAIN
        self.register_load_state_dict_pre_hook(rebuild_bank_for_loading)

    # ------------------------------------------------------------------ forward
    def lora_layers(self) -> Dict[str, LoRALinear]:
        return {n: self.backbone.get_submodule(n) for n in self.lora_layer_names}

    def _push_gate_values(self, values: Dict[str, object], detach: bool = False) -> None:
        """Each adapter's gate times its shared magnitude, if any, into every layer."""
        if self.shared_magnitudes:
            values = {
                n: v if isinstance(v, PerCallGate) or n not in self.shared_magnitudes
                else v * (self.shared_magnitudes[n].detach() if detach else self.shared_magnitudes[n])
                for n, v in values.items()
            }
        for layer in self.lora_layers().values():
            layer.gate_values = values

    def features(self, x: Tensor) -> Tensor:
        """The adapted backbone's output, with one gate sample for the whole minibatch.

        The layers keep detached test-time gates afterwards: a sampled gate (part of the
        autograd graph) left in them would make the model impossible to deep-copy, which
        LwF and GDumb do.
        """
        self._push_gate_values(self.gate.values(dict(self.shared_magnitudes.items())))
        try:
            features = self.backbone(x)
            self.gate.finish_forward()
            return features
        finally:
            self._push_gate_values(self.gate.eval_values(), detach=True)

    def forward(self, x: Tensor, task_labels: Optional[Tensor] = None) -> Tensor:
        """Class-incremental: one head for every sample; ``task_labels`` are ignored."""
        return self.head(self.features(x))

    def forward_single_task(self, x: Tensor, task_label: int) -> Tensor:
        return self.forward(x)

    # ------------------------------------------------------------- bank lifecycle
    @property
    def adapter_names(self) -> List[str]:
        """Adapters stored in the bank (kept or still candidate), oldest first."""
        return list(self.gate.logits.keys())

    @property
    def candidate(self) -> Optional[str]:
        return self.gate.candidate

    def _add_adapter_everywhere(self, name: str) -> None:
        """One adapter in every wrapped layer, drawn from a generator of the model's own."""
        generator = generator_for(self.seed, "adapter", name)
        for layer in self.lora_layers().values():
            layer.add_adapter(name, generator=generator)

    def open_candidate(self) -> str:
        """Add a new adapter to every wrapped layer, with its gate logit and magnitudes."""
        if self.gate.candidate is not None:
            raise RuntimeError(f"candidate {self.gate.candidate!r} is still open")
        self.unmerge()
        self._rescale_finished_adapters()
        name = f"adapter_{self._opened}"
        self._add_adapter_everywhere(name)
        device = next(iter(self.lora_layers().values())).weight.device
        self.gate.add(name, self.init_logit, device=device)  # beside its adapters
        self.gate.logits[name].requires_grad_(False)
        if self.magnitude_scope == "per_adapter":
            self.shared_magnitudes[name] = nn.Parameter(torch.ones((), device=device))
        self.gate.candidate = name
        self._opened += 1
        return name

    def prune(self, name: str) -> None:
        """Remove an adapter for good: its tensors leave the model."""
        self.unmerge()
        for layer in self.lora_layers().values():
            layer.delete_adapter(name)
        self.gate.remove(name)
        if name in self.shared_magnitudes:
            del self.shared_magnitudes[name]
        self.pruned_adapters.append(name)

    def freeze(self, name: str) -> None:
        """Turn a trained adapter into a frozen SD-LoRA direction; its logit stops training."""
        for layer in self.lora_layers().values():
            adapter = layer.adapters[name]
            if self.boundary == "preserve":
                adapter.to_direction_form(fold_norm=True)
            adapter.set_requires_grad(adapter=False, magnitude=False)
        set_trainable([self.gate.logits[name]], False)
        if name in self.shared_magnitudes:
            set_trainable([self.shared_magnitudes[name]], False)
        if self.gate.candidate == name:
            self.gate.candidate = None
            self.gate.selecting = False

    def _rescale_finished_adapters(self) -> None:
        """``boundary="rescale"``: when the next experience opens, finished adapters switch to
        direction form keeping their magnitude, as the reference's reload does then (so the
        evaluation right after an experience still sees the adapter as it trained)."""
        if self.boundary != "rescale":
            return
        for layer in self.lora_layers().values():
            for name, adapter in layer.adapters.items():
                if name != self.gate.candidate:
                    adapter.to_direction_form(fold_norm=False)

    def is_frozen(self, name: str) -> bool:
        """Neither the factors nor the logit of ``name`` train any more."""
        layers = self.lora_layers().values()
        return name != self.gate.candidate and not any(
            p.requires_grad for l in layers for side in (l.adapters[name].A, l.adapters[name].B)
            for p in side.values())

    def set_phase(self, phase: "Phase") -> None:
        """Make trainable what ``phase`` trains; everything else gets no gradient."""
        candidate_adapter, candidate_magnitude, candidate_logit, head = PHASE_TRAINS[phase]
        past_magnitudes = self.train_past_magnitudes and phase is Phase.TRAIN
        candidate = self.gate.candidate
        if self.boundary == "rescale" and self.adapter_names == [candidate]:
            candidate_magnitude = False  # the reference's alpha_0 does not train in task 0
        shared = self.magnitude_scope == "per_adapter"
        for layer in self.lora_layers().values():
            for name, adapter in layer.adapters.items():
                is_candidate = name == candidate
                adapter.set_requires_grad(
                    adapter=is_candidate and candidate_adapter,
                    magnitude=not shared and (candidate_magnitude if is_candidate else past_magnitudes),
                )
        for name, alpha in self.shared_magnitudes.items():
            set_trainable([alpha], candidate_magnitude if name == candidate else past_magnitudes)
        for name, logit in self.gate.logits.items():
            set_trainable([logit], name == candidate and candidate_logit)
        set_trainable(self.head.parameters(), head)
        self.phase = phase

    def magnitude_phase(self, train_past_magnitudes: bool) -> None:
        """The candidate, its magnitudes and the head train (and, if asked, earlier magnitudes)."""
        self.train_past_magnitudes = bool(train_past_magnitudes)
        self.set_phase(Phase.TRAIN)

    def end_experience(self) -> None:
        """What trains between experiences: the head and the magnitudes the next one trains.

        Avalanche's regularisers (EWC, MAS, SI) take their importances after the
        experience, by a backward pass through the model: that must reach what the next
        experience trains, and something must still need a gradient at all.
        """
        self.gate.selecting = False
        self.gate.last_candidate_value = None  # the last sampled gate holds an autograd graph
        self._push_gate_values(self.gate.eval_values(), detach=True)
        self.set_phase(Phase.TRAIN)

    def optimizer_group_anchors(self, name: str) -> List[Union[str, int]]:
        """Where a new tensor's optimizer group comes from (names in this model, or tensor ids).

        The head joins the group of the backbone classifier it replaced, an adapter the
        group of the weight it adapts, a gate logit the group of its adapter.
        """
        if name.startswith("head."):
            suffix = name.rsplit(".", 1)[-1]
            own = [self.replaced_classifier_ids[suffix]] if suffix in self.replaced_classifier_ids else []
            return own + [i for k, i in self.replaced_classifier_ids.items() if k != suffix]
        if ".adapters." in name:
            return [name.split(".adapters.", 1)[0] + ".base.weight"]
        if name.startswith(("gate.logits.", "shared_magnitudes.")) and self.lora_layer_names:
            adapter = name.rsplit(".", 1)[-1]
            layer = self.lora_layers()[self.lora_layer_names[0]]
            if adapter in layer.adapters:
                key = next(iter(layer.adapters[adapter].A.keys()))
                return [f"backbone.{self.lora_layer_names[0]}.adapters.{adapter}.A.{key}"]
        return []

    def optimizer_group_role(self, name: str) -> Optional[str]:
        """``"magnitudes"`` for an SD-LoRA magnitude (an optimizer group may claim them)."""
        if name.startswith("shared_magnitudes.") or ".magnitude." in name:
            return "magnitudes"
        return None

    # ------------------------------------------------------------------ merging
    @torch.no_grad()
    def merge(self) -> None:
        """Fold every open adapter into the base weights for inference at the backbone's cost."""
        self._push_gate_values(self.gate.eval_values(), detach=True)
        for layer in self.lora_layers().values():
            layer.merge()

    @torch.no_grad()
    def unmerge(self) -> None:
        for layer in self.lora_layers().values():
            layer.unmerge()

    @property
    def merged(self) -> bool:
        return any(l.merged for l in self.lora_layers().values())

    # ------------------------------------------------------------- persistence
    def fingerprint_settings(self) -> Dict[str, object]:
        return {
            "magnitude_scope": self.magnitude_scope,
            "boundary": self.boundary,
            "rank": self.rank,
            "init_logit": self.init_logit,
            "task_incremental": self.task_incremental,
            "lora_layer_names": list(self.lora_layer_names),
            "tau": self.gate.tau,
        }

    def get_extra_state(self) -> dict:
        return {
            "pruned_adapters": list(self.pruned_adapters),
            "opened": self._opened,
            "candidate": self.gate.candidate,
            "seed": int(self.seed),
        }

    def set_extra_state(self, state: dict) -> None:
        self.pruned_adapters = list(state["pruned_adapters"])
        self._opened = int(state["opened"])
        self.gate.candidate = state["candidate"]
        self.seed = int(state.get("seed", self.seed))


@register
class TaskIncrementalLoRAClassifier(LoRAClassifier, MultiTaskModule):
    """The task-incremental bank: a :class:`MultiTaskModule` with one head per task.

    The bank is shared by every task, so the backbone runs once per minibatch and only the
    head is chosen by task; ``task_labels=None`` returns every known task's output, as
    Avalanche's ``MultiTaskModule`` does (LwF distils them all). A subclass that routes
    samples through different adapters per task (``TaskRoutedLoRAClassifier``) overrides
    :meth:`forward_single_task` and lets :meth:`forward` split the minibatch by task.
    """

    def _head_for(self, features: Tensor, task_label: int) -> Tensor:
        if isinstance(self.head, MultiTaskModule):
            return self.head.forward_single_task(features, int(task_label))
        return self.head(features)

    def forward(self, x: Tensor, task_labels: Optional[Tensor] = None):
        if task_labels is None:
            return self.forward_all_tasks(x)
        features = self.features(x)
        if isinstance(task_labels, int):
            return self._head_for(features, task_labels)
        if not isinstance(self.head, MultiTaskModule):
            return self.head(features)
        return self._by_task(features, task_labels)

    def _by_task(self, features: Tensor, task_labels: Tensor) -> Tensor:
        """Each sample through its task's head; a mixed minibatch padded to its widest head.

        Avalanche pads with zeros to the widest head the model ever built, evaluation's
        included, so a training loss would change with what was evaluated; here the
        padding depends on the minibatch alone and is a masked logit, not a phantom class.
        """
        tasks = torch.unique(task_labels).tolist()
        if len(tasks) == 1:
            return self._head_for(features, tasks[0])
        outs = {t: self._head_for(features[task_labels == t], t) for t in tasks}
        width = max(o.shape[1] for o in outs.values())
        fill = float(getattr(self.head, "mask_value", -1000))
        out = features.new_full((features.shape[0], width), fill, dtype=next(iter(outs.values())).dtype)
        for t, o in outs.items():
            out[task_labels == t, : o.shape[1]] = o
        return out

    def forward_single_task(self, x: Tensor, task_label: int) -> Tensor:
        return self._head_for(self.features(x), task_label)

    def forward_all_tasks(self, x: Tensor) -> Dict[int, Tensor]:
        features = self.features(x)
        return {t: self._head_for(features, t) for t in sorted(self.known_train_tasks_labels)}
