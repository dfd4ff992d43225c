"""Avalanche's growing heads, with rows drawn from the model's seed instead of the global RNG.

Avalanche grows a head whenever an experience shows it a new class or task, in evaluation
too: evaluating on the whole test stream grows it early. With the global generator, that
early growth would change both the new rows' values and every random draw after it (data
order included), so a run's weights would depend on whether, and on what, it evaluated.
Here class ``c`` of task ``t`` always gets the same initial row, and growing draws nothing
from the global generator.
"""

from __future__ import annotations

import torch
from avalanche.benchmarks.utils.flat_data import ConstantSequence
from avalanche.models import IncrementalClassifier, MultiHeadClassifier

from avalanche_litelora.adapters.seeding import global_rng_untouched, seeded_linear_rows_


class SeededIncrementalClassifier(IncrementalClassifier):
    """:class:`IncrementalClassifier` whose row ``c`` is drawn from ``(seed, task, c)``."""

    def __init__(self, in_features: int, initial_out_features: int = 2, *, seed: int, task: str = "", **kwargs):
        with global_rng_untouched():
            super().__init__(in_features, initial_out_features, **kwargs)
        self.seed = int(seed)
        self.task = str(task)
        seeded_linear_rows_(self.classifier, range(initial_out_features), self.seed, "head", self.task)

    @torch.no_grad()
    def adaptation(self, experience) -> None:
        old = self.classifier.out_features
        with global_rng_untouched():
            super().adaptation(_SortedClasses(experience))
        new = self.classifier.out_features
        if new > old:
            seeded_linear_rows_(self.classifier, range(old, new), self.seed, "head", self.task)


def classes_of(experience) -> list:
    """The classes an experience holds, sorted.

    Avalanche's classic benchmarks and ``with_classes_timeline`` set
    ``classes_in_this_experience``; a stream from ``benchmark_from_datasets`` does not, and
    ``Naive`` trains on it, so the classes are then read off the dataset's targets.
    """
    classes = getattr(experience, "classes_in_this_experience", None)
    if classes is None:
        classes = experience.dataset.targets.uniques
    return sorted(int(c) for c in classes)


class _SortedClasses:
    """An experience whose ``classes_in_this_experience`` is a sorted list.

    Avalanche's newer generators (``with_classes_timeline``) give a set, which
    ``MultiHeadClassifier.adaptation`` cannot index a tensor with.
    """

    def __init__(self, experience):
        self._experience = experience
        self.classes_in_this_experience = classes_of(experience)

    def __getattr__(self, name):
        return getattr(self._experience, name)


class SeededMultiHeadClassifier(MultiHeadClassifier):
    """:class:`MultiHeadClassifier` whose task heads are :class:`SeededIncrementalClassifier`."""

    def __init__(self, in_features: int, initial_out_features: int = 2, *, seed: int, **kwargs):
        with global_rng_untouched():
            super().__init__(in_features, initial_out_features, **kwargs)
        self.seed = int(seed)
        self.classifiers["0"] = self.new_task_head("0")

    def new_task_head(self, task: str) -> SeededIncrementalClassifier:
        head = SeededIncrementalClassifier(
            self.in_features, self.starting_out_features, seed=self.seed, task=task,
            masking=False, auto_adapt=False,
        )
        return head.to(self._adaptation_device)

    @torch.no_grad()
    def adaptation(self, experience) -> None:
        task_labels = experience.task_labels
        if isinstance(task_labels, ConstantSequence):
            task_labels = [task_labels[0]]
        for tid in sorted({str(t) for t in task_labels}):
            if tid not in self.classifiers:  # built here, so Avalanche's own draws nothing
                self.classifiers[tid] = self.new_task_head(tid)
                self.register_buffer(
                    f"active_units_T{tid}",
                    torch.zeros(self.starting_out_features, dtype=torch.int8, device=self._adaptation_device),
                )
        with global_rng_untouched():
            super().adaptation(_SortedClasses(experience))
