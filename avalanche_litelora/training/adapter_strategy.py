"""The base of every strategy here: a ``SupervisedTemplate`` that wires a backbone into an
adapter model and appends its method's plugins.

A method is a config class, a model class and the plugins :meth:`AdapterStrategy._method_plugins`
returns (as Avalanche's ``LwF`` or ``EWC`` append theirs); everything else, from keyword
checks to the backbone surgery, is done once here.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Type

from avalanche.core import BasePlugin
from avalanche.training.templates import SupervisedTemplate
from torch import nn
from torch.nn import CrossEntropyLoss
from torch.optim import Optimizer

from avalanche_litelora.checks import check_count
from avalanche_litelora.config import ALL_CONFIGS, accepts_config_keywords, refuse_foreign_settings
from avalanche_litelora.models.access import model_of_type
from avalanche_litelora.models.adapter_model import AdapterModel
from avalanche_litelora.training.checkpoint import CheckpointMixin
from avalanche_litelora.training.compatibility import check_plugins
from avalanche_litelora.training.distributed import RankSafeTemplateMixin, refuse_unsupported_plugins
from avalanche_litelora.training.first_experience import HeadFromFirstExperienceMixin
from avalanche_litelora.training.plugins.guards import AdapterGuardPlugin


def _check_template_arguments(model, base_kwargs) -> None:
    """What Avalanche would only trip over at ``train()``, refused before anything changes."""
    for name in ("train_mb_size", "train_epochs"):
        if name in base_kwargs:
            check_count(name, base_kwargs[name])
    if base_kwargs.get("eval_mb_size") is not None:
        check_count("eval_mb_size", base_kwargs["eval_mb_size"])
    if isinstance(model, nn.Module):
        tensors = list(model.parameters()) + list(model.buffers())
        if any(t.is_meta for t in tensors):
            raise ValueError(
                "the model has tensors on the meta device (shapes without data): load or "
                "materialise its weights (e.g. to_empty + load_state_dict) before training"
            )


@accepts_config_keywords(config_class=ALL_CONFIGS)  # any method's setting reaches our own check
class AdapterStrategy(
    HeadFromFirstExperienceMixin, CheckpointMixin, RankSafeTemplateMixin, SupervisedTemplate
):
    """Wires a plain backbone into :attr:`model_class` and appends the method's plugins.

    Its settings are one config (:attr:`config_class`), given as ``config=`` or as its
    fields' keywords; every other keyword goes to ``SupervisedTemplate``. Every check runs
    before the backbone changes. ``save_checkpoint(path)`` / ``resume(path)`` come from
    :class:`~avalanche_litelora.training.checkpoint.CheckpointMixin`.
    """

    #: The model a plain backbone is wired into.
    model_class: Type[AdapterModel]
    #: The settings this strategy takes.
    config_class: type
    #: What the method is called in messages.
    method_name = "adapter"

    def __init__(
        self,
        *,
        model: nn.Module,
        optimizer: Optimizer,
        config=None,
        criterion=None,
        plugins: Optional[Sequence[BasePlugin]] = None,
        **kwargs,
    ):
        config, base_kwargs = self.config_class.from_keywords(config, kwargs)
        refuse_foreign_settings(self.config_class, base_kwargs, type(self).__name__)
        _check_template_arguments(model, base_kwargs)
        #: The settings, validated (a ``dataclasses`` instance: ``asdict(strategy.config)``).
        self.config = config
        method_plugins = [AdapterGuardPlugin()] + self._method_plugins(config)
        # SupervisedTemplate rejects unknown keywords before the backbone is touched.
        super().__init__(
            model=model,
            optimizer=optimizer,
            criterion=criterion if criterion is not None else CrossEntropyLoss(),
            plugins=method_plugins + list(plugins or []),
            **base_kwargs,
        )
        refuse_unsupported_plugins(self.plugins)  # under torchrun; the backbone is untouched
        check_plugins(self.plugins, model, type(self).__name__)  # the backbone is still untouched
        if isinstance(model, self.model_class):
            self.model = model  # a ready model: its own rank, targets, head and gate apply
        else:
            self.model = self.model_class(model, **config.model_keywords())

    def _method_plugins(self, config) -> List[BasePlugin]:
        """The lifecycle plugins that make this strategy the method it is."""
        raise NotImplementedError

    # Read-outs: the numbers users watch, straight from the model.
    @property
    def adapter_model(self) -> AdapterModel:
        """The strategy's model, unwrapped from DDP."""
        return model_of_type(self, self.model_class, self.method_name)

    def adapter_parameter_count(self) -> int:
        return self.adapter_model.adapter_parameter_count()
