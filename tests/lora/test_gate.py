import pytest
import torch

from avalanche_litelora.lora.gate import AdapterGate, straight_through_gumbel_sigmoid


def test_straight_through_is_hard_forward_soft_backward():
    logit = torch.tensor(0.3, requires_grad=True)
    torch.manual_seed(0)
    beta = straight_through_gumbel_sigmoid(logit, tau=1.0)
    assert beta.item() in (0.0, 1.0)
    beta.backward()
    assert 0 < logit.grad.item() <= 0.25  # derivative of a sigmoid, never zero


def test_noise_only_on_candidate_and_only_while_selecting():
    gate = AdapterGate()
    gate.add("old", 0.5)
    gate.add("new", 0.01)
    gate.candidate = "new"
    gate.train()
    gate.selecting = True
    torch.manual_seed(0)
    samples = [gate.values() for _ in range(200)]
    assert all(s["old"].item() == 1.0 and not s["old"].requires_grad for s in samples)
    new_values = {s["new"].item() for s in samples}
    assert new_values == {0.0, 1.0}  # Gumbel noise flips a near-zero logit both ways
    gate.selecting = False
    assert {gate.values()["new"].item() for _ in range(20)} == {1.0}
    gate.selecting = True
    gate.eval()
    assert {gate.values()["new"].item() for _ in range(20)} == {1.0}  # l > 0 at eval


def test_eval_gate_is_logit_sign():
    gate = AdapterGate()
    gate.add("a", -0.2)
    gate.add("b", 0.2)
    gate.eval()
    values = gate.values()
    assert values["a"].item() == 0.0 and values["b"].item() == 1.0
    assert not gate.is_open("a") and gate.is_open("b")


def test_bad_tau():
    with pytest.raises(ValueError, match="tau"):
        AdapterGate(tau=0)


@pytest.mark.parametrize("noise, open_rate", [("logistic", 0.5), ("gumbel", 0.632)])
def test_noise_options_open_a_zero_logit_as_their_distributions_say(noise, open_rate):
    """At logit 0 the symmetric logistic noise opens the gate half the time; the reference's
    Gumbel sample (mean +0.58) opens it with probability 1 - exp(-1) = 0.632."""
    gate = AdapterGate(noise=noise)
    gate.add("new", 0.0)
    gate.candidate, gate.selecting = "new", True
    gate.train()
    torch.manual_seed(0)
    opened = sum(gate.values()["new"].item() for _ in range(4000)) / 4000
    assert abs(opened - open_rate) < 0.03, opened


def test_an_unknown_noise_is_refused():
    with pytest.raises(ValueError, match="gate noise"):
        AdapterGate(noise="gaussian")
