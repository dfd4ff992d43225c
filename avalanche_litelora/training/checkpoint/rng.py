"""The global random generators (torch CPU and CUDA, numpy, Python ``random``) as plain data.

A resumed run must draw the same numbers as the uninterrupted one; the guard plugins also use
them to keep an evaluation from shifting the training's random stream.
"""

from __future__ import annotations

import random
from typing import Any, Dict, Mapping

import numpy as np
import torch

from avalanche_litelora.training.checkpoint.format import CheckpointError


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
