"""The code blocks of the README and the docs pages, and the checks the docs tests run on them.

``docs/contributing/docs.md`` is the user-facing description of what is checked and how.
"""

from __future__ import annotations

import configparser
import dataclasses
import importlib.util
import inspect
import os
import re
import shlex
from contextlib import ExitStack, contextmanager
from functools import lru_cache, wraps
from pathlib import Path
from typing import Iterator, List, Optional
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: Generated data (harness reports, study tables): not written as documentation, not checked here.
GENERATED = (DOCS / "benchmarks", DOCS / "bank_scaling")

#: The marker a block that cannot run here carries on the line right before it.
MARKER = re.compile(r"^\s*<!--\s*doc-test:\s*(?P<kind>needs-data|needs-process)\s+(?P<why>\S.*?)\s*-->")
ANY_MARKER = re.compile(r"^\s*<!--\s*doc-test:")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)\s*$")
PYTHON = {"python", "py"}
SHELL = {"bash", "sh", "shell", "console"}
NOT_CODE = {"text", "yaml", "json", "toml", "ini"}

#: Tiny budgets while a page's blocks run (environment variables override them).
TRAIN = int(os.environ.get("DOCS_TEST_TRAIN", 32))
TEST = int(os.environ.get("DOCS_TEST_TEST", 16))
SELECTION_STEPS = int(os.environ.get("DOCS_TEST_SELECTION_STEPS", 8))
CAPS = {"train_epochs": 1, "min_selection_steps": SELECTION_STEPS, "refit_steps": 5}
STRATEGIES = ("LiteLoRAStrategy", "PerTaskLoRAStrategy", "TaskRoutedLoRAStrategy",
              "SequentialLoRAStrategy", "HeadOnlyStrategy", "ShareStrategy")
MNIST_BENCHMARKS = ("SplitMNIST", "PermutedMNIST", "RotatedMNIST", "SplitFMNIST")


@dataclasses.dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: Optional[str] = None  # "needs-data: why"

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def pages() -> List[Path]:
    """README.md and every hand-written page under docs/."""
    found = [ROOT / "README.md"]
    for path in sorted(DOCS.rglob("*.md")):
        if not any(parent in path.parents for parent in GENERATED):
            found.append(path)
    return found


def blocks(path: Path) -> List[Block]:
    """The fenced blocks of one page, each with the marker on the line before it, if any."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: List[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, lang, start = match["indent"], match["lang"].lower(), i
        body = []
        i += 1
        while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"{path.relative_to(ROOT)}:{start + 1}: a code block is never closed")
        previous = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.search(previous)
        if ANY_MARKER.search(previous) and not marker:
            raise AssertionError(f"{path.relative_to(ROOT)}:{start}: a doc-test marker without a "
                                 "kind (needs-data / needs-process) and a reason")
        skip = f"{marker['kind']}: {marker['why']}" if marker else None
        found.append(Block(path, start + 1, lang, "\n".join(body) + "\n", skip))
        i += 1
    return found


def markers_without_block(path: Path) -> List[int]:
    """Lines holding a doc-test marker that no code block follows."""
    lines = path.read_text(encoding="utf-8").splitlines()
    bad = []
    for n, line in enumerate(lines):
        if ANY_MARKER.search(line):
            following = next((l for l in lines[n + 1:] if l.strip()), "")
            if not FENCE.match(following):
                bad.append(n + 1)
    return bad


# ---------------------------------------------------------------------------------------------
# Python blocks: tiny budgets


def _cut_benchmark(build):
    from avalanche_litelora.data.streams import subsample_benchmark

    @wraps(build)
    def cut(*args, **kwargs):
        return subsample_benchmark(build(*args, **kwargs), TRAIN, TEST, seed=0)

    return cut


def _cut_known_redundancy(build):
    @wraps(build)
    def cut(*args, **kwargs):
        kwargs["train_per_experience"] = min(kwargs.get("train_per_experience") or TRAIN, TRAIN)
        kwargs["test_per_experience"] = min(kwargs.get("test_per_experience") or TEST, TEST)
        return build(*args, **kwargs)

    return cut


def _capped_init(cls):
    """``cls.__init__`` with every budget in :data:`CAPS` capped, given as a keyword, inside
    ``config=``, or left at its default. The class itself stays the same object."""
    init = cls.__init__
    params = inspect.signature(init).parameters

    @wraps(init)
    def __init__(self, *args, **kwargs):
        config = kwargs.get("config")
        for name, cap in CAPS.items():
            if name == "train_epochs":  # a SupervisedTemplate keyword, default 1
                kwargs[name] = min(kwargs.get(name, 1), cap)
            elif config is not None and hasattr(config, name):
                config = dataclasses.replace(config, **{name: min(getattr(config, name), cap)})
                kwargs["config"] = config
            elif config is None and name in params:
                kwargs[name] = min(kwargs.get(name, params[name].default), cap)
        init(self, *args, **kwargs)

    return __init__


@contextmanager
def tiny_budgets() -> Iterator[None]:
    """While open, the docs' examples run on tiny streams and budgets: Avalanche's MNIST
    benchmarks and ``known_redundancy_stream`` cut to :data:`TRAIN` / :data:`TEST` samples per
    experience, every strategy's budgets capped at :data:`CAPS` (``docs/contributing/docs.md``)."""
    import avalanche.benchmarks as benchmarks
    import avalanche.benchmarks.classic as classic

    import avalanche_litelora

    with ExitStack() as stack:
        for name in MNIST_BENCHMARKS:
            cut = _cut_benchmark(getattr(classic, name))
            stack.enter_context(mock.patch.object(classic, name, cut))
            if hasattr(benchmarks, name):
                stack.enter_context(mock.patch.object(benchmarks, name, cut))
        stack.enter_context(mock.patch.object(
            avalanche_litelora, "known_redundancy_stream",
            _cut_known_redundancy(avalanche_litelora.known_redundancy_stream)))
        for name in STRATEGIES:
            cls = getattr(avalanche_litelora, name)
            stack.enter_context(mock.patch.object(cls, "__init__", _capped_init(cls)))
        yield


# ---------------------------------------------------------------------------------------------
# Shell blocks: commands that exist, flags that exist


def commands(code: str) -> List[str]:
    """One string per command: comments dropped, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", code)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        if not line or line.startswith("#"):
            continue
        out.append(re.split(r"\s+#\s", line, maxsplit=1)[0].strip())
    return out


@lru_cache(maxsize=None)
def make_targets() -> frozenset:
    text = (ROOT / "Makefile").read_text()
    return frozenset(m.group(1) for m in re.finditer(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, re.M))


@lru_cache(maxsize=None)
def extras() -> frozenset:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return frozenset(config["options.extras_require"])


@lru_cache(maxsize=None)
def _sources(folder: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in sorted(folder.rglob("*.py")))


def _repo_module(name: str) -> Optional[Path]:
    """The repository's own module ``name`` (a file or package), or None."""
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__main__.py", base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _check_flags(flags: List[str], sources: str, what: str) -> List[str]:
    return [f"{what} has no flag {flag}" for flag in flags
            if f'"{flag}"' not in sources and f"'{flag}'" not in sources]


def _flags(tokens: List[str]) -> List[str]:
    return [t.split("=", 1)[0] for t in tokens if t.startswith("--") and len(t) > 2]


def check_command(command: str) -> List[str]:
    """What is wrong with one shell command of the docs (empty: nothing)."""
    tokens = shlex.split(command)
    if tokens and tokens[0] in {"NO_MKDOCS_2_WARNING=1"}:
        tokens = tokens[1:]
    head = tokens[0]
    if head == "make":
        return [f"no make target {t}" for t in tokens[1:] if t not in make_targets()]
    if head in {"pip", "pip3"} or tokens[:3] == ["python", "-m", "pip"]:
        wanted = [e for t in tokens for group in re.findall(r"\[([\w,-]+)\]", t) for e in group.split(",")]
        return [f"setup.cfg has no extra {e!r}" for e in wanted if e not in extras()]
    if head == "tensorboard":
        return [] if importlib.util.find_spec("tensorboard") else ["tensorboard is not installed"]
    if head == "bash":
        return [] if (ROOT / tokens[1]).is_file() else [f"no script {tokens[1]}"]
    if head in {"python", "python3", ".venv/bin/python", "torchrun"}:
        rest = tokens[1:]
        if head == "torchrun":  # torchrun's own options come before the script or -m module
            start = next((i for i, t in enumerate(rest) if t == "-m" or t.endswith(".py")), None)
            if start is None:
                return ["torchrun without a script or -m module"]
            rest = rest[start:]
        if rest[0] == "-m":
            module, args = rest[1], rest[2:]
            own = _repo_module(module)
            if own is not None:
                top = ROOT / module.split(".")[0]
                return _check_flags(_flags(args), _sources(top), f"python -m {module}")
            if importlib.util.find_spec(module) is None:
                return [f"no module {module}"]
            return []
        script = ROOT / rest[0]
        if not script.is_file():
            return [f"no script {rest[0]}"]
        return _check_flags(_flags(rest[1:]), script.read_text(), rest[0])
    return [f"the docs test does not know the command {head!r}: check it in tests/docs/doc_blocks.py "
            "or mark the block"]
