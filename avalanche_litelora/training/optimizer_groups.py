"""Put the tensors a strategy builds into the right group of a user's optimizer.

Avalanche's ``make_optimizer`` adds a new parameter to the group shared by its module's
other parameters, and fails with "No unique group" when several groups meet there. The
bank's tensors meet several groups as soon as a user splits their optimizer (a learning
rate for the backbone, another for its classifier; no weight decay on biases): the head
replaces the backbone's classifier, and the gate logits sit beside no existing tensor.
So before Avalanche updates the optimizer, every new tensor is placed here: in the group of
the tensor the model names as its anchor (the head: the classifier it replaced, or, for a
backbone without one, the layer that feeds it; an adapter: the weight it adapts; a gate
logit: its adapter), else where Avalanche's own rule puts it.

A group may also claim a *role*: ``{"params": [], "lr": 8e-3, "adapter_role": "magnitudes"}``
takes every SD-LoRA magnitude the model builds (the model names a tensor's role through
``optimizer_group_role``), as the reference code gives its magnitudes their own rate and
weight decay.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Set, Union

from torch import Tensor, nn
from torch.optim import Optimizer

Anchor = Union[str, int]


#: The key of a parameter group that claims a role (see the module docstring).
ROLE_KEY = "adapter_role"


def _role_groups(optimizer: Optimizer) -> Dict[str, int]:
    roles = {}
    for index, group in enumerate(optimizer.param_groups):
        role = group.get(ROLE_KEY)
        if role is not None:
            if role in roles:
                raise ValueError(f"two parameter groups claim the role {role!r}: give it to one")
            roles[role] = index
    return roles


def _group_of_ids(optimizer: Optimizer) -> Dict[int, int]:
    return {id(p): g for g, group in enumerate(optimizer.param_groups) for p in group["params"]}


def _avalanche_rule(name: str, named_groups: Dict[str, int]) -> Set[int]:
    """Groups of the deepest module above ``name`` that holds optimised parameters."""
    parts = name.split(".")[:-1]
    while True:
        prefix = ".".join(parts)
        groups = {g for n, g in named_groups.items() if not prefix or n.startswith(prefix + ".")}
        if groups or not parts:
            return groups
        parts.pop()


def place_new_parameters(
    optimizer: Optimizer,
    model: nn.Module,
    anchors: Optional[Callable[[str], Sequence[Anchor]]] = None,
) -> List[Tensor]:
    """Add every parameter of ``model`` the optimizer lacks to its group; return those added.

    With one group there is nothing to choose (Avalanche adds to it). ``anchors(name)``
    lists parameter names of ``model``, or ids of tensors the optimizer holds, whose group
    ``name`` should join (default: the model's ``optimizer_group_anchors``, if any).
    :raises ValueError: a parameter whose group nothing decides, named.
    """
    if len(optimizer.param_groups) < 2:
        return []
    if anchors is None:
        anchors = getattr(model, "optimizer_group_anchors", None) or (lambda name: [])
    roles = _role_groups(optimizer)
    role_of = getattr(model, "optimizer_group_role", None) or (lambda name: None)
    by_id = _group_of_ids(optimizer)
    params = dict(model.named_parameters())
    named_groups = {n: by_id[id(p)] for n, p in params.items() if id(p) in by_id}
    added: List[Tensor] = []
    for name, param in params.items():
        if id(param) in by_id:
            continue
        group = roles.get(role_of(name))
        for anchor in anchors(name) if group is None else ():
            key = id(params[anchor]) if isinstance(anchor, str) and anchor in params else anchor
            if isinstance(key, int) and key in by_id:
                group = by_id[key]
                break
        if group is None:
            candidates = _avalanche_rule(name, named_groups)
            if len(candidates) != 1:
                raise ValueError(
                    f"cannot choose a group of the optimizer ({len(optimizer.param_groups)} "
                    f"parameter groups) for the new parameter {name!r}: the groups {sorted(candidates)} "
                    "meet above it. Build the optimizer on the strategy's model "
                    "(strategy.model.parameters()), or on the backbone with its classifier and "
                    "each wrapped layer's weight inside one group"
                )
            group = candidates.pop()
        optimizer.param_groups[group]["params"].append(param)
        by_id[id(param)] = group
        named_groups[name] = group
        added.append(param)
    return added

