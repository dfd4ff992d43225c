"""Offline-capable dataset fetching for Avalanche's classic MNIST / Fashion-MNIST benchmarks.

``fetch_dataset("mnist", root)`` then ``SplitMNIST(..., dataset_root=root)``;
CLI: ``python -m avalanche_litelora.data fetch --root DIR [--dataset mnist|fashion_mnist|all]``.
"""

from .clipart import CLIPART_ROOT, clipart_benchmark
from .fetch import DatasetUnavailableError, FetchResult, fetch_dataset, verify_dataset
from .paper import (DomainNet, PaperDatasetError, SplitCIFAR100ViT, SplitCUB200, SplitDomainNet,
                    SplitImageNetA, SplitImageNetR, reference_class_order)
from .wordnet_topics import SplitWordNetTopics, load_wordnet_topics

__all__ = ["DatasetUnavailableError", "FetchResult", "fetch_dataset", "verify_dataset",
           "SplitWordNetTopics", "load_wordnet_topics", "CLIPART_ROOT", "clipart_benchmark"]

# ground-truth redundancy streams (novel / repeat / near-repeat experiences)
from .redundancy_streams import (  # noqa: E402
    ExperienceRedundancy, InputTransform, known_redundancy_stream, redundancy_of, stream_redundancy,
)

__all__ += ["ExperienceRedundancy", "InputTransform", "known_redundancy_stream", "redundancy_of",
            "stream_redundancy"]
__all__ += ["DomainNet", "PaperDatasetError", "SplitCIFAR100ViT", "SplitCUB200", "SplitDomainNet",
            "SplitImageNetA", "SplitImageNetR", "reference_class_order"]
