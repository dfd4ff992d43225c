"""Quiet by default: third-party noise filtered where it arises, the package's warnings once."""

import subprocess
import sys
import warnings

import pytest

from avalanche_litelora import LiteLoRAStrategy
from avalanche_litelora.lora.plugins.selection import InertSelectionWarning
from builders import lite_kwargs, sgd, single_thread, tiny_mlp

one_thread = pytest.fixture(scope="module", autouse=True)(single_thread)


def _no_qp_solver_installed() -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import qpsolvers
    return not qpsolvers.available_solvers


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not _no_qp_solver_installed(), reason="a QP solver is installed: qpsolvers has nothing to say")
def test_an_entry_point_prints_no_qp_solver_warning_and_leaves_no_filter_behind():
    entry_point = _python(
        "import runpy, sys, warnings\n"
        "import avalanche_litelora\n"
        "print('filters left:', [f[1].pattern for f in warnings.filters if f[1] is not None and 'QP' in f[1].pattern])\n"
        "sys.argv = ['analysis', '--help']\n"
        "try:\n    runpy.run_module('avalanche_litelora.analysis', run_name='__main__')\n"
        "except SystemExit:\n    pass\n")
    assert entry_point.returncode == 0, entry_point.stderr
    assert "filters left: []" in entry_point.stdout and "usage:" in entry_point.stdout
    assert "Warning" not in entry_point.stderr, entry_point.stderr
    plain = _python("import avalanche")  # the control: Avalanche alone says it
    assert "no QP solver found" in plain.stderr


def test_an_inert_selection_warning_is_shown_once_per_run_not_per_experience(ci_benchmark):
    model = tiny_mlp()
    strategy = LiteLoRAStrategy(
        model=model, optimizer=sgd(model),
        **lite_kwargs(lambda_sparsity=50.0, lambda_rule="absolute", train_epochs=1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # Python's own per-text filter would hide nothing here
        for experience in ci_benchmark.train_stream[:4]:
            strategy.train(experience)
    inert = [w for w in caught if issubclass(w.category, InertSelectionWarning)]
    assert len(inert) == 1 and "at least the experience's whole loss" in str(inert[0].message)
