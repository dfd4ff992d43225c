"""Share as Avalanche plugins: open the task's coefficients, merge the subspace.

Order: :class:`~avalanche_litelora.training.plugins.guards.AdapterGuardPlugin` (the guard
every adapter strategy shares), :class:`ShareOpenTaskPlugin`, :class:`ShareMergePlugin`.
They need a :class:`~avalanche_litelora.share.ShareClassifier` as the strategy's model.
All three are rank-safe under torchrun (see :mod:`avalanche_litelora.training.distributed`):
the model trains DDP-wrapped while a task's coefficients are open, a non-finite loss stops
every rank together, and the merged subspace is rank 0's on every rank.
"""

from __future__ import annotations

from typing import List, Optional, Union

from avalanche.core import SupervisedPlugin
from avalanche.training.utils import _at_task_boundary

from avalanche_litelora.share.basis import validate_basis_choice
from avalanche_litelora.checks import check_count
from avalanche_litelora.share.model import ShareClassifier
from avalanche_litelora.training.optimizer_groups import place_new_parameters
from avalanche_litelora.adapters.access import adapter_model_of
from avalanche_litelora.training.distributed import (
    broadcast_state_,
    make_optimizer,
    drop_ddp_wrapper,
    wrap_for_training,
)
from avalanche_litelora.registry import register


def share_group_anchors(model: ShareClassifier):
    """Optimizer-group anchors of Share's new tensors (see ``optimizer_groups``): the head
    joins the classifier it replaced, a layer's coefficients and vectors its weight."""
    replaced = getattr(model, "replaced_classifier_ids", {})

    def anchors(name: str) -> List[Union[str, int]]:
        if name.startswith("head."):
            suffix = name.rsplit(".", 1)[-1]
            return [replaced[suffix]] if suffix in replaced else list(replaced.values())
        for marker in (".adapters.", ".basis_", ".extra_"):
            if marker in name:
                return [name.split(marker, 1)[0] + ".base.weight"]
        return []

    return anchors


def _place(strategy) -> None:
    model = adapter_model_of(strategy, ShareClassifier)
    place_new_parameters(strategy.optimizer, model, share_group_anchors(model))


@register
class ShareOpenTaskPlugin(SupervisedPlugin, supports_distributed=True):
    """Before each experience: the task's coefficients and ``phi`` temporary basis vectors.

    Only those, plus the head, train; the shared basis and other tasks stay frozen. The
    optimizer is rebuilt with a fresh state, as for the LoRA strategies. Under torchrun
    the model is then wrapped in DDP around exactly these tensors; the wrapper copies rank
    0's fresh coefficients, vectors and head to every rank.

    :param pseudo_rank: width p of a task's coefficients (after the first task).
    :param temporary_vectors: phi, extra basis vectors trained with each later task.
    """

    lifecycle_step = "open"

    def __init__(self, pseudo_rank: int = 1, temporary_vectors: int = 2):
        super().__init__()
        self.pseudo_rank = check_count("pseudo_rank", pseudo_rank)
        self.temporary_vectors = check_count("temporary_vectors", temporary_vectors)

    def before_train_dataset_adaptation(self, strategy, **kwargs):
        """Avalanche's head growth and optimizer update then see the plain model's names,
        and the head built by the strategy has its place in the user's optimizer."""
        drop_ddp_wrapper(strategy)
        _place(strategy)

    def before_training_exp(self, strategy, **kwargs):
        model = adapter_model_of(strategy, ShareClassifier)
        names = model.open_tasks(
            list(strategy.experience.task_labels),
            pseudo_rank=self.pseudo_rank,
            temporary_vectors=self.temporary_vectors,
        )
        model.set_trainable(names)
        _place(strategy)
        make_optimizer(strategy, reset_optimizer_state=True)
        wrap_for_training(strategy)


@register
class ShareMergePlugin(SupervisedPlugin, supports_distributed=True):
    """After each experience: SVD merge of every task's adapter into the new shared basis.

    Under torchrun every rank then loads rank 0's merged subspace (bases, coefficients,
    head, merge report): an SVD's basis size and signs need not be bitwise reproducible
    across processes, and a basis that differed would silently split the ranks. The DDP
    wrapper, built around the replaced tensors, is dropped; the next task rewraps.

    :param explained_variance: fraction of the stacked adapters' energy the basis keeps
        (default 0.6 when ``k`` is not given either).
    :param k: fixed basis size instead of a threshold.
    """

    lifecycle_step = "close"

    def __init__(self, explained_variance: Optional[float] = None, k: Optional[int] = None):
        super().__init__()
        validate_basis_choice(explained_variance, k)
        self.explained_variance = explained_variance
        self.k = k

    def after_training_exp(self, strategy, **kwargs):
        if not _at_task_boundary(strategy.experience, before=False):
            return  # an online stream merges once, after its experience's last sub-experience
        model = adapter_model_of(strategy, ShareClassifier)
        model.merge_subspace(explained_variance=self.explained_variance, k=self.k)
        broadcast_state_(model, model.is_learned_key)
        drop_ddp_wrapper(strategy)
        # the merge replaced the bases and coefficients: point the optimizer at the new ones
        make_optimizer(strategy, reset_optimizer_state=True)
