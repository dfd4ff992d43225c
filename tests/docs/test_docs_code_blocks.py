"""Every code block of the README and the docs pages runs, is checked, or says why it cannot.

Python blocks run page by page, on tiny budgets (``doc_blocks.tiny_budgets``); shell blocks are
checked for commands and flags that exist; a block marked ``<!-- doc-test: needs-data ... -->``
or ``needs-process`` is counted and reported. ``docs/contributing/docs.md`` describes it for
the reader.
"""

from __future__ import annotations

import os

import pytest
import torch

from doc_blocks import (
    NOT_CODE,
    PYTHON,
    ROOT,
    SHELL,
    blocks,
    check_command,
    commands,
    markers_without_block,
    pages,
    tiny_budgets,
)

PAGES = pages()
PYTHON_PAGES = [p for p in PAGES if any(b.lang in PYTHON and not b.skip for b in blocks(p))]


def _id(path):
    return str(path.relative_to(ROOT))


def test_every_block_is_python_shell_or_output_and_every_marker_has_a_block():
    problems = []
    for page in PAGES:
        for block in blocks(page):
            if block.lang not in PYTHON | SHELL | NOT_CODE:
                problems.append(f"{block.where}: a code block needs a language (python, bash or text), "
                                f"got {block.lang!r}")
        problems += [f"{_id(page)}:{n}: a doc-test marker with no code block after it"
                     for n in markers_without_block(page)]
    assert not problems, "\n".join(problems)


def test_every_shell_command_exists_with_its_flags():
    problems, checked = [], 0
    for page in PAGES:
        for block in blocks(page):
            if block.lang not in SHELL or block.skip:
                continue
            for command in commands(block.code):
                checked += 1
                problems += [f"{block.where}: {command!r}: {p}" for p in check_command(command)]
    assert checked > 10
    assert not problems, "\n".join(problems)


def test_blocks_that_cannot_run_here_say_why(capsys):
    skipped = [b for page in PAGES for b in blocks(page) if b.skip]
    with capsys.disabled():
        print(f"\n{len(skipped)} documentation block(s) not run here:")
        for block in skipped:
            print(f"  {block.where}: {block.skip}")
    assert len(skipped) <= 6, "more blocks skipped than the docs should need: make them runnable"


@pytest.fixture
def docs_workdir(tmp_path, fetched, monkeypatch):
    """A fresh folder whose ``data/`` holds MNIST, as the examples expect."""
    root, _ = fetched("mnist")
    (tmp_path / "data").symlink_to(root, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AVALANCHE_LITELORA_PROGRESS", "0")
    return tmp_path


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=_id)
def test_the_python_blocks_of_a_page_run(page, docs_workdir):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    namespace = {"__name__": "__docs__"}
    ran = 0
    try:
        with tiny_budgets():
            for block in blocks(page):
                if block.lang not in PYTHON or block.skip:
                    continue
                torch.manual_seed(0)
                try:
                    exec(compile(block.code, block.where, "exec"), namespace)
                except Exception as error:
                    raise AssertionError(f"the block at {block.where} failed: {error!r}") from error
                ran += 1
    finally:
        torch.set_num_threads(threads)
    assert ran > 0
