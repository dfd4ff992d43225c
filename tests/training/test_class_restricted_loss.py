"""The class-incremental loss, sample by sample: current classes, replayed ones, its own."""

import torch
from torch.nn import CrossEntropyLoss
from torch.nn import functional as F

from avalanche_litelora.training.masking import ClassRestrictedLoss, restrict_per_sample


def test_each_sample_competes_with_its_own_set_of_classes():
    logits = torch.randn(3, 6, requires_grad=True)
    targets = torch.tensor([4, 1, 5])  # current, replayed (seen), one no stream showed yet
    masked = restrict_per_sample(logits, targets, current=[4, 5], seen=[0, 1])
    finite = torch.isfinite(masked)
    assert finite[0].tolist() == [False, False, False, False, True, True]  # current only
    assert finite[1].tolist() == [True, True, False, False, True, True]  # every seen class
    assert finite[2].tolist() == [False, False, False, False, True, True]
    F.cross_entropy(masked, targets).backward()
    assert torch.count_nonzero(logits.grad[~finite]) == 0


def test_a_replayed_sample_has_the_loss_of_its_seen_classes_never_infinity():
    logits = torch.randn(2, 6)
    targets = torch.tensor([0, 4])
    loss = ClassRestrictedLoss(CrossEntropyLoss(reduction="none"))
    loss.set_classes(current=[4, 5], seen=[0, 1, 2, 3])
    values = loss(logits, targets)
    assert torch.isfinite(values).all()
    assert torch.allclose(values[0], F.cross_entropy(logits[:1], targets[:1]))  # all 6 seen
    assert torch.allclose(values[1], F.cross_entropy(logits[1:, 4:], torch.tensor([0])))


def test_an_unlisted_target_still_gets_a_finite_loss():
    logits = torch.randn(1, 6)
    assert torch.isfinite(restrict_per_sample(logits, torch.tensor([3]), [4, 5], [])[0, 3])


def test_off_or_before_any_experience_it_is_the_wrapped_criterion():
    logits, targets = torch.randn(4, 6), torch.tensor([0, 1, 4, 5])
    loss = ClassRestrictedLoss(CrossEntropyLoss())
    assert torch.equal(loss(logits, targets), F.cross_entropy(logits, targets))
    loss.set_classes([4, 5], [])
    loss.enabled = False
    assert torch.equal(loss(logits, targets), F.cross_entropy(logits, targets))


def test_settings_of_the_wrapped_criterion_read_and_write_through():
    inner = CrossEntropyLoss()
    loss = ClassRestrictedLoss(inner)
    loss.reduction = "none"  # as Avalanche's MIR plugin does
    assert inner.reduction == "none" and loss.reduction == "none"
