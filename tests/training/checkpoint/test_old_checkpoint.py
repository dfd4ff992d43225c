"""Checkpoints written before the stacked bank (commit ee10a4b) still load and predict the same.

The fixtures were made at ee10a4b by ``fixtures/make_checkpoint_main_ee10a4b.py`` with the
package's own ``save_checkpoint``: a per-task LoRA bank of four frozen adapters, a LiteLoRA
bank whose later candidates were pruned, and a Share model, each on tiny digits with the
tiny ViT (q and v slices of the fused qkv).
"""

from pathlib import Path

import pytest
import torch

from avalanche_litelora import LoRAClassifier
from avalanche_litelora.share import ShareClassifier
from avalanche_litelora.training.checkpoint import read_checkpoint
from builders import tiny_vit

FIXTURES = Path(__file__).parent / "fixtures"
#: float32 predictions recomputed by other code paths (stacked or looped): rounding only.
ATOL = 1e-5


def _payload(stem):
    return read_checkpoint(FIXTURES / f"{stem}.pt"), torch.load(FIXTURES / f"{stem}.expected.pt")


def _lora_model(payload):
    model = LoRAClassifier(tiny_vit(), rank=4)
    model.load_state_dict(payload["model"])
    return model.eval()


@pytest.mark.parametrize("stem", ["checkpoint_main_ee10a4b", "litelora_checkpoint_main_ee10a4b"])
def test_an_old_lora_checkpoint_loads_and_predicts_the_same(stem):
    payload, expected = _payload(stem)
    model = _lora_model(payload)
    assert model.adapter_names == expected["adapters"]
    assert model.pruned_adapters == expected["pruned"]
    assert model.gate_logits() == expected["gate_logits"]
    assert all(model.is_frozen(n) for n in model.adapter_names)
    with torch.no_grad():
        torch.testing.assert_close(model(expected["inputs"]), expected["logits_unmerged"], rtol=0, atol=ATOL)
        model.merge()
        torch.testing.assert_close(model(expected["inputs"]), expected["logits_merged"], rtol=0, atol=ATOL)
        model.unmerge()
        torch.testing.assert_close(model(expected["inputs"]), expected["logits_unmerged"], rtol=0, atol=ATOL)


def test_an_old_lora_checkpoint_round_trips_with_the_same_keys():
    payload, _ = _payload("checkpoint_main_ee10a4b")
    model = _lora_model(payload)
    state = model.state_dict()
    assert set(state) == set(payload["model"])  # no cache leaks into the state dict
    for key, value in payload["model"].items():
        if torch.is_tensor(value):
            assert torch.equal(state[key], value), key


def test_an_old_share_checkpoint_loads_and_predicts_the_same():
    payload, expected = _payload("share_checkpoint_main_ee10a4b")
    model = ShareClassifier(tiny_vit(), rank=4)
    model.load_state_dict(payload["model"])
    model.eval()
    assert model.tasks == expected["tasks"]
    assert set(model.state_dict()) == set(payload["model"])
    with torch.no_grad():
        logits = model(expected["inputs"], expected["task_labels"])
    torch.testing.assert_close(logits, expected["logits"], rtol=0, atol=ATOL)


def test_an_old_checkpoint_resumes_a_strategy_built_the_same_way():
    """The whole file (optimizer, RNG, plugins) restores, not only the model."""
    from avalanche.training.determinism.rng_manager import RNGManager

    from avalanche_litelora import PerTaskLoRAStrategy
    from avalanche_litelora.training.checkpoint import load_checkpoint
    from builders import quiet_evaluator, sgd

    from avalanche_litelora.training.checkpoint import CheckpointError

    def build(**mechanics):
        RNGManager.set_random_seeds(1993)
        vit = tiny_vit()
        return PerTaskLoRAStrategy(
            model=vit, optimizer=sgd(vit, 0.1), rank=4, train_mb_size=32, train_epochs=2,
            eval_mb_size=512, evaluator=quiet_evaluator(), **mechanics,
        )

    # written before the reference's mechanics became the default: it resumes into a run with
    # the mechanics it was trained with, and a run with today's defaults is told which differ
    with pytest.raises(CheckpointError, match=r"boundary: checkpoint has 'preserve'"):
        load_checkpoint(build(), FIXTURES / "checkpoint_main_ee10a4b.pt")
    strategy = build(boundary="preserve")
    done = load_checkpoint(strategy, FIXTURES / "checkpoint_main_ee10a4b.pt")["experiences_done"]
    assert done == 4
    expected = torch.load(FIXTURES / "checkpoint_main_ee10a4b.expected.pt")
    with torch.no_grad():
        logits = strategy.model.eval()(expected["inputs"])
    torch.testing.assert_close(logits, expected["logits_unmerged"], rtol=0, atol=ATOL)
