"""docs/architecture.md names only modules, folders and classes that exist."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "avalanche_litelora"
DOC = (ROOT / "docs" / "architecture.md").read_text()
FOLDERS = ("adapters", "lora", "share", "training", "metrics", "analysis", "data", "backbones")


def _named_paths():
    """Every ``folder/file.py`` or ``folder/`` the page names, with the folder it sits under."""
    paths = set(re.findall(r"\b((?:[a-z_]+/)+[a-z_]+\.py)\b", DOC)) | set(re.findall(r"`([a-z_]+/)`", DOC))
    block = DOC.split("```")[1]  # the drawing: bare file names belong to the folder on their line
    folder = None
    for line in block.splitlines():
        head = re.match(r"\s*([a-z_]+)/", line)
        if head and head.group(1) in FOLDERS:
            folder = head.group(1)
        elif re.match(r"\s?[a-z_]+\.py", line):  # a module at the package's top level
            folder = None
            paths.add(line.split()[0])
        for name in re.findall(r"\b([a-z_]+\.py)\b", line):
            if "/" not in name and folder and folder not in ("lora", "share"):
                paths.add(f"{folder}/{name}")
    return sorted(p for p in paths if not p.startswith(("openbank/", "tests/")))


@pytest.mark.parametrize("path", _named_paths())
def test_every_module_the_page_names_exists(path):
    top = PACKAGE / path
    assert top.exists() or (ROOT / path).exists() or (PACKAGE / "training" / path).exists(), path


def test_every_method_folder_has_the_same_kinds_of_files():
    for folder in ("lora", "share"):
        names = {p.stem for p in (PACKAGE / folder).iterdir()}
        assert {"config", "layer", "model", "plugins"} <= names and names & {"strategy", "strategies"}


def test_every_class_the_page_names_is_importable():
    import avalanche_litelora as al
    from avalanche_litelora.lora.strategies import LoRABankStrategy
    from avalanche_litelora.training.adapter_strategy import AdapterStrategy

    for name in ("LoRAClassifier", "OpenCandidatePlugin", "FreezeBankPlugin", "AdapterGuardPlugin"):
        assert hasattr(al, name)
    assert issubclass(LoRABankStrategy, AdapterStrategy)
