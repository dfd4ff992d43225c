"""The benchmarks of the LoRA continual-learning papers, from local folders.

Shaped like Avalanche's classic benchmarks (``n_experiences``, ``seed``, ``fixed_class_order``,
``return_task_id``, ``train_transform`` / ``eval_transform``, ``dataset_root``) and built with
Avalanche's own generators. A missing or incomplete folder raises :class:`PaperDatasetError`
naming the dataset, the layout expected and where it is published; nothing is downloaded
unless ``download=True``.
"""

from ._folders import PaperDatasetError, reference_class_order, split_class, split_sizes
from .cifar import SplitCIFAR100ViT
from .cub import SplitCUB200
from .domainnet import DOMAINS as DOMAINNET_DOMAINS
from .domainnet import DomainNet, SplitDomainNet
from .imagenet import SplitImageNetA, SplitImageNetR
from .transforms import pretrained_statistics, vit_eval_transform, vit_train_transform

__all__ = [
    "DOMAINNET_DOMAINS", "DomainNet", "PaperDatasetError", "SplitCIFAR100ViT", "SplitCUB200",
    "SplitDomainNet", "SplitImageNetA", "SplitImageNetR", "pretrained_statistics",
    "reference_class_order", "split_class", "split_sizes", "vit_eval_transform", "vit_train_transform",
]
