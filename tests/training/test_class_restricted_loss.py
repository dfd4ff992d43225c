"""The class-incremental loss, sample by sample: current classes, replayed ones, its own."""

import torch
from torch.nn import CrossEntropyLoss
from torch.nn import functional as F

from avalanche_litelora.training.losses import ClassRestrictedLoss, restrict_per_sample


def test_a_minibatch_of_current_classes_competes_among_them_alone():
    logits = torch.randn(3, 6, requires_grad=True)
    masked = restrict_per_sample(logits, torch.tensor([4, 5, 4]), current=[4, 5], seen=[0, 1])
    finite = torch.isfinite(masked)
    assert finite.tolist() == [[False, False, False, False, True, True]] * 3
    F.cross_entropy(masked, torch.tensor([4, 5, 4])).backward()
    assert torch.count_nonzero(logits.grad[~finite]) == 0  # earlier classes' rows untouched


def test_a_rehearsed_minibatch_competes_with_every_seen_class():
    logits = torch.randn(3, 6)
    targets = torch.tensor([4, 1, 5])  # current, replayed (seen), current
    finite = torch.isfinite(restrict_per_sample(logits, targets, current=[4, 5], seen=[0, 1]))
    # the current samples too: the replayed ones must not push the current classes down alone
    assert finite.tolist() == [[True, True, False, False, True, True]] * 3


def test_a_replayed_sample_has_the_loss_of_its_seen_classes_never_infinity():
    logits = torch.randn(2, 6)
    targets = torch.tensor([0, 4])
    loss = ClassRestrictedLoss(CrossEntropyLoss(reduction="none"))
    loss.set_classes(current=[4, 5], seen=[0, 1, 2, 3])
    values = loss(logits, targets)
    assert torch.isfinite(values).all()
    assert torch.allclose(values, F.cross_entropy(logits, targets, reduction="none"))  # all 6 seen


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
