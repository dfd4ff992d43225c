"""The documentation site builds in strict mode (a broken link or API reference fails), and
its API reference covers the package's public names."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

import avalanche_litelora
from doc_blocks import DOCS, ROOT

#: Former names kept importable for old code; the reference documents the current ones.
FORMER_NAMES = {"BankGuardPlugin", "ShareGuardPlugin"}


def test_the_site_builds_in_strict_mode(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    pytest.importorskip("mkdocstrings")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "site" / "api" / "strategies.html").read_text().count("LiteLoRAStrategy") > 1


def test_the_api_reference_covers_every_public_name():
    reference = "\n".join(p.read_text() for p in (DOCS / "api").glob("*.md"))
    documented = set(re.findall(r"^::: avalanche_litelora\.(\w+)\s*$", reference, re.M))
    missing = set(avalanche_litelora.__all__) - documented - FORMER_NAMES
    assert not missing, f"not in docs/api/*.md: {sorted(missing)}"
    assert not documented - set(avalanche_litelora.__all__), "the reference names what the package does not export"
