"""How redundant is an adapter bank? Subspace overlap, captured energy and effective rank.

Pure torch on the adapters' low-rank factors, never on the full ``d_out x d_in`` updates:
``Delta W_i = s_i B_i A_i`` is factorised once as ``U_i diag(S_i) V_i^T``, and every measure
below needs only one orthonormal basis and ``S_i``. Two sides (``side=``):

- ``"output"`` (default): the column spaces of ``Delta W_i`` (``U_i``), what each update writes;
- ``"input"``: the row spaces (``V_i``, the span of ``A_i``), which inputs each update reads.
  InfLoRA's guarantee and O-LoRA's penalty act here. Measured as the column spaces of
  ``Delta W_i^T = A_i^T (s_i B_i^T)``: the same factors read the other way round.

Units of analysis:
- a *slice* (``q`` / ``v`` of timm's fused ``qkv``, or ``out`` for a plain layer);
- a *layer*: its real update, the slices stacked at their output rows;
- the *model*: the block-diagonal update over all layers. Its principal angles are the
  union of the layers' angles, so model figures are sums of layer sums (never an average
  of layer averages).

Measures, for adapters in creation order (``adapter_10`` after ``adapter_9``), on the chosen side:
- ``overlap[i, j]``: mean squared cosine of the principal angles between the spaces of
  ``Delta W_i`` and ``Delta W_j``: 1 identical span, 0 orthogonal;
- ``captured[i]``: the fraction of ``||Delta W_i||_F^2`` (its energy) that lies in the span
  of all earlier adapters' spaces: how well earlier adapters represent a later task
  (NaN for the first adapter);
- ``rank90`` / ``rank99``: singular values of the stacked bank ``[Delta W_0 / ||Delta W_0||,
  ...]`` needed for 90% / 99% of its energy (each adapter normalised, so the count measures
  how many directions the bank spans, not how large its magnitudes are).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

from avalanche_litelora.adapters.access import unwrap_ddp

#: Singular values below this fraction of the largest one count as zero.
RANK_RTOL = 1e-6
ENERGY_LEVELS = (0.90, 0.99)
#: ``"output"``: column spaces of the updates; ``"input"``: their row spaces (see module doc).
SIDES = ("output", "input")

_FACTOR_KEY = re.compile(
    r"^(?P<layer>.+)\.adapters\.(?P<adapter>[^.]+)\.(?P<kind>A|B|magnitude)\.(?P<slice>[^.]+)$"
)
_NORMALIZED_KEY = re.compile(r"^(?P<layer>.+)\.adapters\.(?P<adapter>[^.]+)\.normalized$")


# ------------------------------------------------------------------ the bank as factors
@dataclass
class SliceFactors:
    """One adapter in one slice: ``Delta W = scale * B A``; ``rows`` places it in the layer's stack."""

    A: Tensor
    B: Tensor
    scale: float
    rows: Tuple[int, int]


#: ``bank[layer][adapter][slice]``.
Bank = Dict[str, Dict[str, Dict[str, SliceFactors]]]


def adapter_sort_key(name: str) -> Tuple[int, str]:
    """Creation order: the trailing integer as a number (``adapter_10`` after ``adapter_9``)."""
    match = re.search(r"(\d+)$", name)
    return (int(match.group(1)) if match else -1, name)


def bank_from_state_dict(state_dict: Mapping[str, Tensor]) -> Bank:
    """The adapter factors a ``LoRAClassifier`` state dict holds, keyed by layer name.

    Works on a bare state dict (no model needed). Layer names lose the ``backbone.`` (and a
    DDP ``module.``) prefix, so they match ``LoRAClassifier.lora_layer_names``. A layer's
    slices are stacked in state-dict order (q, then v); the rows between them (k) are zero
    in every update, so leaving them out changes no angle and no norm.
    """
    raw: Dict[str, Dict[str, Dict[str, Dict[str, Tensor]]]] = {}
    normalized: Dict[Tuple[str, str], bool] = {}
    for key, value in state_dict.items():
        if not torch.is_tensor(value):
            continue
        match = _FACTOR_KEY.match(key)
        if match:
            layer = _strip_prefixes(match["layer"])
            slot = raw.setdefault(layer, {}).setdefault(match["adapter"], {})
            slot.setdefault(match["slice"], {})[match["kind"]] = value.detach()
            continue
        match = _NORMALIZED_KEY.match(key)
        if match:
            layer = _strip_prefixes(match["layer"])
            normalized[(layer, match["adapter"])] = bool(value)
    if not raw:
        raise ValueError(
            "no LoRA adapters in this state dict: expected keys like "
            "'backbone.blocks.0.attn.qkv.adapters.adapter_0.A.q'"
        )
    bank: Bank = {}
    for layer, adapters in raw.items():
        bank[layer] = {}
        for adapter, slices in adapters.items():
            bank[layer][adapter] = {}
            start = 0
            for key, parts in slices.items():
                missing = {"A", "B", "magnitude"} - set(parts)
                if missing:
                    raise ValueError(f"{layer}.{adapter}.{key} lacks {sorted(missing)} in the state dict")
                a, b = parts["A"].double(), parts["B"].double()
                if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1]:
                    raise ValueError(
                        f"{layer}.{adapter}.{key}: A {tuple(a.shape)} and B {tuple(b.shape)} "
                        "do not multiply as B @ A"
                    )
                scale = float(parts["magnitude"])
                if normalized.get((layer, adapter), False):
                    norm = float(b.norm() * a.norm())
                    scale = scale / norm if norm > 0 else 0.0
                bank[layer][adapter][key] = SliceFactors(a, b, scale, (start, start + b.shape[0]))
                start += b.shape[0]
    return bank


def _strip_prefixes(layer: str) -> str:
    for prefix in ("module.", "backbone."):
        if layer.startswith(prefix):
            layer = layer[len(prefix):]
    return layer


# ------------------------------------------------------------------ linear algebra
def low_rank_svd(B: Tensor, A: Tensor, rtol: float = RANK_RTOL) -> Tuple[Tensor, Tensor]:
    """``U`` (orthonormal column-space basis) and nonzero singular values ``S`` of ``B @ A``.

    Through a thin QR of ``B``, so the cost is ``O((d_out + d_in) r^2)`` whatever the layer size.
    """
    q, r = torch.linalg.qr(B.double())
    u_small, s, _ = torch.linalg.svd(r @ A.double(), full_matrices=False)
    keep = s > (s.max() * rtol if s.numel() and s.max() > 0 else math.inf)
    return q @ u_small[:, keep], s[keep]


def check_side(side: str) -> str:
    """``side`` if it names one of :data:`SIDES`, else a ``ValueError`` saying what each means."""
    if side not in SIDES:
        raise ValueError(
            f"side must be 'output' (the updates' column spaces) or 'input' (their row spaces, "
            f"the span of A), got {side!r}"
        )
    return side


def _side_svd(b: Tensor, a: Tensor, side: str) -> Tuple[Tensor, Tensor]:
    """``low_rank_svd`` of ``B A`` (output side) or of ``(B A)^T = A^T B^T`` (input side)."""
    return low_rank_svd(b, a) if side == "output" else low_rank_svd(a.t(), b.t())


def subspace_overlap(u1: Tensor, u2: Tensor) -> float:
    """Mean squared cosine of the principal angles between two orthonormal bases (NaN if empty)."""
    k = min(u1.shape[1], u2.shape[1])
    if k == 0:
        return float("nan")
    return float((u1.t() @ u2).pow(2).sum() / k)


def captured_energy_fraction(u: Tensor, s: Tensor, span: Tensor) -> float:
    """Fraction of ``||U diag(S) V^T||_F^2`` left after projecting onto ``span`` (orthonormal)."""
    energy = float(s.pow(2).sum())
    if energy == 0:
        return float("nan")
    if span.shape[1] == 0:
        return 0.0
    return float((span.t() @ (u * s)).pow(2).sum()) / energy


def energy_rank(singular_values: Tensor, level: float) -> int:
    """How many of the largest singular values hold ``level`` of the total energy."""
    if not 0 < level <= 1:
        raise ValueError(f"energy level must be in (0, 1], got {level!r}")
    energy = singular_values.double().pow(2).sort(descending=True).values
    total = float(energy.sum())
    if total == 0:
        return 0
    cumulative = energy.cumsum(0) / total
    return int((cumulative < level - 1e-12).sum()) + 1


# ------------------------------------------------------------------ per-unit statistics
@dataclass
class _Sums:
    """Additive pieces of the measures, so units combine by summation (slices -> layer -> model)."""

    cos2: Tensor  # n x n: sum of squared cosines of principal angles
    angles: Tensor  # n x n: number of principal angles
    in_span: Tensor  # n: energy inside the earlier adapters' span
    energy: Tensor  # n
    stacked_sv: Tensor  # singular values of the normalised stacked bank

    def __add__(self, other: "_Sums") -> "_Sums":
        return _Sums(
            self.cos2 + other.cos2,
            self.angles + other.angles,
            self.in_span + other.in_span,
            self.energy + other.energy,
            torch.cat([self.stacked_sv, other.stacked_sv]),
        )


def _sums(factors: Sequence[Tuple[Tensor, Tensor]]) -> _Sums:
    """The additive pieces for one unit, from each adapter's ``(U, S)`` (creation order).

    One Gram matrix of all bases gives every pair; the span of the earlier adapters grows
    by the orthonormalised residual of each new one, so no SVD grows with the bank.
    """
    n = len(factors)
    ranks = [u.shape[1] for u, _ in factors]
    bounds = [0]
    for r in ranks:
        bounds.append(bounds[-1] + r)
    dim = factors[0][0].shape[0] if n else 0
    bases = torch.cat([u for u, _ in factors], dim=1) if n else torch.zeros(0, 0, dtype=torch.float64)
    gram2 = (bases.t() @ bases).pow(2)
    cos2 = torch.zeros(n, n, dtype=torch.float64)
    angles = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            cos2[i, j] = gram2[bounds[i]: bounds[i + 1], bounds[j]: bounds[j + 1]].sum()
            angles[i, j] = min(ranks[i], ranks[j])
    in_span = torch.zeros(n, dtype=torch.float64)
    energy = torch.tensor([float(s.pow(2).sum()) for _, s in factors], dtype=torch.float64)
    span = torch.zeros(dim, 0, dtype=torch.float64)
    for i, (u, s) in enumerate(factors):
        if span.shape[1] and s.numel():
            in_span[i] = (span.t() @ (u * s)).pow(2).sum()
        span = _extend_span(span, u)
    columns = [u * (s / s.norm()) for u, s in factors if s.numel()]
    if columns:
        stacked_sv = torch.linalg.svdvals(torch.cat(columns, dim=1))
    else:
        stacked_sv = torch.zeros(0, dtype=torch.float64)
    return _Sums(cos2, angles, in_span, energy, stacked_sv)


def _extend_span(span: Tensor, u: Tensor, tol: float = 1e-8) -> Tensor:
    """``span`` plus the directions of orthonormal ``u`` it misses (Gram-Schmidt, done twice)."""
    if u.shape[1] == 0:
        return span
    residual = u - span @ (span.t() @ u)
    residual = residual - span @ (span.t() @ residual)
    q, sv, _ = torch.linalg.svd(residual, full_matrices=False)
    return torch.cat([span, q[:, sv > tol]], dim=1)


@dataclass
class UnitRedundancy:
    """The measures for one slice, one layer or the whole model."""

    name: str
    adapters: List[str]
    overlap: Tensor  # n x n, NaN where an adapter is all zero
    captured: Tensor  # n, NaN for the first adapter
    singular_values: Tensor  # of the normalised stacked bank, descending
    rank90: int
    rank99: int

    @property
    def mean_pairwise_overlap(self) -> float:
        """Mean of the off-diagonal overlaps (NaN with fewer than two adapters)."""
        n = len(self.adapters)
        if n < 2:
            return float("nan")
        off = self.overlap[~torch.eye(n, dtype=torch.bool)]
        off = off[~off.isnan()]
        return float(off.mean()) if off.numel() else float("nan")

    @property
    def mean_captured(self) -> float:
        """Mean captured fraction over the adapters that have earlier ones."""
        values = self.captured[1:]
        values = values[~values.isnan()]
        return float(values.mean()) if values.numel() else float("nan")


def _unit(name: str, adapters: List[str], sums: _Sums) -> UnitRedundancy:
    with torch.no_grad():
        overlap = torch.where(sums.angles > 0, sums.cos2 / sums.angles.clamp_min(1), torch.nan)
        captured = torch.where(sums.energy > 0, sums.in_span / sums.energy.clamp_min(1e-300), torch.nan)
        if len(adapters):
            captured[0] = torch.nan
    sv = sums.stacked_sv.sort(descending=True).values
    return UnitRedundancy(
        name, adapters, overlap, captured, sv, energy_rank(sv, 0.90), energy_rank(sv, 0.99)
    )


@dataclass
class RedundancyReport:
    """Overlap, captured fraction and effective rank per slice, per layer and for the model."""

    adapters: List[str]
    model: UnitRedundancy
    layers: Dict[str, UnitRedundancy] = field(default_factory=dict)
    #: Per slice, keyed ``"<layer>.<slice>"``; only for layers with more than one slice.
    slices: Dict[str, UnitRedundancy] = field(default_factory=dict)
    #: The spaces measured: ``"output"`` (column spaces) or ``"input"`` (row spaces, span of ``A``).
    side: str = "output"


def analyse_bank(bank: Bank, *, slices: bool = True, side: str = "output") -> RedundancyReport:
    """Every measure for every layer and the model (and each q/v slice unless ``slices=False``),
    on the updates' column spaces (``side="output"``) or row spaces (``side="input"``)."""
    check_side(side)
    adapter_sets = {frozenset(adapters) for adapters in bank.values()}
    if len(adapter_sets) != 1:
        raise ValueError("the wrapped layers do not hold the same adapters; is the bank corrupt?")
    adapters = sorted(next(iter(adapter_sets)), key=adapter_sort_key)
    layers: Dict[str, UnitRedundancy] = {}
    per_slice: Dict[str, UnitRedundancy] = {}
    model_sums: Optional[_Sums] = None
    for layer_name in sorted(bank, key=_natural_key):
        per_adapter = bank[layer_name]
        slice_keys = list(per_adapter[adapters[0]]) if adapters else []
        layer_factors = [_layer_svd(per_adapter[a], side) for a in adapters]
        layer_sums = _sums(layer_factors)
        layers[layer_name] = _unit(layer_name, adapters, layer_sums)
        model_sums = layer_sums if model_sums is None else model_sums + layer_sums
        if slices and len(slice_keys) > 1:
            for key in slice_keys:
                factors = [
                    _side_svd(per_adapter[a][key].scale * per_adapter[a][key].B, per_adapter[a][key].A, side)
                    for a in adapters
                ]
                per_slice[f"{layer_name}.{key}"] = _unit(f"{layer_name}.{key}", adapters, _sums(factors))
    if model_sums is None:
        raise ValueError("the bank has no wrapped layers")
    return RedundancyReport(adapters, _unit("model", adapters, model_sums), layers, per_slice, side)


def _layer_svd(slices: Mapping[str, SliceFactors], side: str) -> Tuple[Tensor, Tensor]:
    """The layer's real update: each slice's ``scale * B`` at its output rows, A stacked.

    On the input side its row space is the sum of the slices' (q's and v's ``A`` together)."""
    height = max(f.rows[1] for f in slices.values())
    rank_total = sum(f.A.shape[0] for f in slices.values())
    b = torch.zeros(height, rank_total, dtype=torch.float64)
    a_parts, col = [], 0
    for f in slices.values():
        r = f.A.shape[0]
        b[f.rows[0]: f.rows[1], col: col + r] = f.scale * f.B.double()
        a_parts.append(f.A.double())
        col += r
    return _side_svd(b, torch.cat(a_parts, dim=0), side)


def _natural_key(name: str) -> list:
    """``blocks.10`` after ``blocks.9``: digit runs compare as numbers."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name)]


def analyse_state_dict(
    state_dict: Mapping[str, Tensor], *, slices: bool = True, side: str = "output"
) -> RedundancyReport:
    """The report for a ``LoRAClassifier`` state dict (no model needed); ``side`` as in
    :func:`analyse_model`."""
    check_side(side)
    return analyse_bank(bank_from_state_dict(state_dict), slices=slices, side=side)


def analyse_model(model, *, slices: bool = True, side: str = "output") -> RedundancyReport:
    """The report for a ``LoRAClassifier`` (or a DDP wrapper around one).

    ``side="output"`` compares the updates' column spaces; ``side="input"`` their row spaces
    (the span of each ``A``), where InfLoRA and O-LoRA constrain the adapters.
    """
    check_side(side)
    return analyse_state_dict(unwrap_ddp(model).state_dict(), slices=slices, side=side)
