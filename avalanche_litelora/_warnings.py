"""Third-party warnings that say nothing to the user, filtered where they arise.

``import avalanche`` imports qpsolvers (for GEM's quadratic program), which warns, at its
import, that no QP solver is installed: true, and irrelevant to everyone who does not run
GEM, yet it came with every entry point of this package (even ``--help``). The package's
first ``import avalanche`` goes through :func:`import_avalanche_quietly`, which ignores
that one message from that one module while the import runs, and nothing else. GEM itself
still fails with qpsolvers' own error if it needs a solver that is not there.
"""

from __future__ import annotations

import warnings

#: qpsolvers' warning at import when no solver package is installed.
NO_QP_SOLVER = r"no QP solver found"


def import_avalanche_quietly() -> None:
    """``import avalanche`` with qpsolvers' no-solver warning ignored (only that, only here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=NO_QP_SOLVER, category=UserWarning, module=r"qpsolvers")
        import avalanche  # noqa: F401


__all__ = ["NO_QP_SOLVER", "import_avalanche_quietly"]
